// hf-tokenizers-bench.js — npm @anush008/tokenizers (a native build of Hugging Face's Rust
// `tokenizers`) on a file, for bench_tokenizer's comparison: prints one line per tokenizer.json,
//   NAME MB/s LOAD_MS
// (NAME: the file name up to its first dot; MB/s: best of 3 encodes of the whole text with
// addSpecialTokens false; LOAD_MS: Tokenizer.fromFile).  When node cannot find the package it
// prints one line saying so and exits 0.
// Usage: node bench/hf-tokenizers-bench.js TEXTFILE TOKENIZER.JSON...
'use strict';
const fs = require('fs');
const path = require('path');
const modDir = process.env.HF_TOKENIZERS_MODULE || path.join(__dirname, '../build/node/node_modules/@anush008/tokenizers');
let Tokenizer;
try {
    ({ Tokenizer } = require(modDir));
} catch (e) {
    console.log(`(no ${modDir}: npm install --prefix build/node @anush008/tokenizers@0.6.0, or make tokenizer-vectors)`);
    process.exit(0);
}
const text = fs.readFileSync(process.argv[2], 'utf8');
const bytes = Buffer.byteLength(text, 'utf8');
(async () => {
    for (const file of process.argv.slice(3)) {
        if (!fs.existsSync(file)) continue;
        const t0 = process.hrtime.bigint();
        const tok = Tokenizer.fromFile(file);
        const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
        let best = Infinity;
        for (let r = 0; r < 3; r++) {
            const t1 = process.hrtime.bigint();
            await tok.encode(text, null, { addSpecialTokens: false });
            const dt = Number(process.hrtime.bigint() - t1) / 1e9;
            if (dt < best) best = dt;
        }
        console.log(`${path.basename(file).split('.')[0]} ${(bytes / best / 1e6).toFixed(2)} ${loadMs.toFixed(1)}`);
    }
})().catch((e) => {
    console.log(`(@anush008/tokenizers failed: ${e.message})`);
    process.exit(0);
});
