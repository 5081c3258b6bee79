#!/usr/bin/env node
// gen-tokenizer-vectors-hf-norm.js — digests of Hugging Face's normalizers over every code point
// (SPEC.md §9.10), from npm `@anush008/tokenizers` (a native build of HF's Rust `tokenizers`).
//
// For each form F and each code point X (U+0000..U+10FFFF without surrogates) the input is
//   nfc, nfd, nfkc, nfkd, lowercase:  X alone
//   nfd-probe:                        "a" U+0301 X U+0316 under NFD: differs from the input when
//                                     X has a non-zero canonical combining class or a decomposition
//   nfc-probe:                        U+0301 X U+0316 under NFC: the same, or X composes with U+0316
// and the output is F's normalizeString(input).  Each code point whose output differs from its
// input contributes the UTF-8 bytes of  hex(X) " " output "\n"  (hex lower case, no leading zeros)
// to a 32-bit FNV-1a hash of its block of 256 code points.  A line
//   F BLOCK COUNT HASH        (BLOCK = X >> 8 in hex, COUNT decimal, HASH 8 hex digits)
// is written for every block with COUNT > 0; a block without a line has every output equal to
// its input.  Writes testvectors/tokenizer/hf-normalizers.txt.
// Usage: node tools/gen-tokenizer-vectors-hf-norm.js [OUTDIR]   (make tokenizer-vectors)
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const modDir = process.env.HF_TOKENIZERS_MODULE || path.join(root, 'build/node/node_modules/@anush008/tokenizers');
const T = require(modDir);
const version = JSON.parse(fs.readFileSync(path.join(modDir, 'package.json'), 'utf8')).version;
const outDir = process.argv[2] || path.join(root, 'testvectors/tokenizer');

const FORMS = [
    ['nfc', T.nfcNormalizer(), false], ['nfd', T.nfdNormalizer(), false], ['nfkc', T.nfkcNormalizer(), false],
    ['nfkd', T.nfkdNormalizer(), false], ['lowercase', T.lowercase(), false],
    ['nfd-probe', T.nfdNormalizer(), 'a\u0301'], ['nfc-probe', T.nfcNormalizer(), '\u0301'],
];

function fnv(h, bytes) {
    for (const b of bytes) h = Math.imul(h ^ b, 16777619) >>> 0;
    return h;
}

const lines = [
    `# SPEC.md §9.10: digests of @anush008/tokenizers ${version} normalizers over every code point;`,
    '# written by tools/gen-tokenizer-vectors-hf-norm.js (its header says how). FORM BLOCK COUNT FNV1A32',
];
for (const [form, norm, probe] of FORMS) {
    for (let block = 0; block < 0x1100; block++) {
        let h = 2166136261, count = 0;
        for (let cp = block << 8; cp < (block + 1) << 8; cp++) {
            if (cp >= 0xD800 && cp <= 0xDFFF) continue;
            const x = String.fromCodePoint(cp);
            const s = probe ? probe + x + '\u0316' : x;
            const r = norm.normalizeString(s);
            if (r === s) continue;
            count++;
            h = fnv(h, Buffer.from(cp.toString(16) + ' ' + r + '\n', 'utf8'));
        }
        if (count > 0) lines.push(`${form} ${block.toString(16)} ${count} ${h.toString(16).padStart(8, '0')}`);
    }
}
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, 'hf-normalizers.txt'), lines.join('\n') + '\n');
process.stderr.write(`gen-tokenizer-vectors-hf-norm: @anush008/tokenizers ${version}: ${lines.length - 2} blocks\n`);
