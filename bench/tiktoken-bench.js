// tiktoken-bench.js — npm tiktoken's speed on a file, for bench_tokenizer's
// comparison: prints "ENCODING MB/s" lines (best of 3 runs of encode_ordinary).
// Usage: node bench/tiktoken-bench.js FILE ENCODING...
'use strict';
const fs = require('fs');
const path = require('path');
const tiktoken = require(process.env.TIKTOKEN_MODULE || path.join(__dirname, '../build/node/node_modules/tiktoken'));
const text = fs.readFileSync(process.argv[2], 'utf8');
const bytes = Buffer.byteLength(text, 'utf8');
for (const name of process.argv.slice(3)) {
    const enc = tiktoken.get_encoding(name);
    let best = Infinity;
    for (let r = 0; r < 3; r++) {
        const t0 = process.hrtime.bigint();
        enc.encode_ordinary(text);
        const dt = Number(process.hrtime.bigint() - t0) / 1e9;
        if (dt < best) best = dt;
    }
    enc.free();
    console.log(`${name} ${(bytes / best / 1e6).toFixed(2)}`);
}
