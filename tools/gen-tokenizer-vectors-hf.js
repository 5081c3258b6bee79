#!/usr/bin/env node
// gen-tokenizer-vectors-hf.js — oracle vectors for Hugging Face tokenizer.json (SPEC.md §9.8, §9.9).
//
// Tokenizes the corpus of gen-tokenizer-vectors.js (read back from the
// committed testvectors/tokenizer/cl100k_base.jsonl: its id and text/hex
// fields, so both generators see the same inputs) plus cases about added
// tokens, with npm `@anush008/tokenizers` (a native build of Hugging Face's
// Rust `tokenizers`), and writes testvectors/tokenizer/hf-<name>.jsonl:
//   {"id", "text" | "hex", "ordinary": [...], "special": [...]}
//   "special":  encode(text, addSpecialTokens=false) with the file as it is
//               (added tokens, special or not, are matched in the text)
//   "ordinary": the same with the special added tokens removed from the file,
//               which is what HF's encode_special_tokens=true does
// Usage: node tools/gen-tokenizer-vectors-hf.js [OUTDIR]   (make tokenizer-vectors)
// Needs @anush008/tokenizers under build/node and data/tokenizers/*.tokenizer.json
// (scripts/fetch-tokenizers.sh).
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const modDir = process.env.HF_TOKENIZERS_MODULE || path.join(root, 'build/node/node_modules/@anush008/tokenizers');
const { Tokenizer } = require(modDir);
const version = JSON.parse(fs.readFileSync(path.join(modDir, 'package.json'), 'utf8')).version;
const outDir = process.argv[2] || path.join(root, 'testvectors/tokenizer');
const dataDir = process.env.TOKMARK_DATA_DIR || path.join(root, 'data/tokenizers');
const MODELS = ['gpt2', 'llama3', 'mistral'];
// Variants of a real file, made here and by the C tests the same way (SPEC.md §9.9):
// Mistral 7B with its normalizer replaced by a Metaspace pre-tokenizer, as newer
// conversions of SentencePiece models (Mistral v0.3, Llama) write it.
const VARIANTS = {
    'mistral-metaspace-first': ['mistral', { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false }],
    'mistral-metaspace-split': ['mistral', { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true }],
};

const cases = [];
for (const line of fs.readFileSync(path.join(root, 'testvectors/tokenizer/cl100k_base.jsonl'), 'utf8').split('\n')) {
    if (!line) continue;
    const o = JSON.parse(line);
    cases.push(o.hex !== undefined ? { id: o.id, bytes: Buffer.from(o.hex, 'hex') } : { id: o.id, text: o.text });
}
const add = (id, text) => cases.push({ id, text });
add('hf_bot', '<|begin_of_text|>Hello<|end_of_text|>');
add('hf_header', '<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>');
add('hf_reserved', 'x<|reserved_special_token_0|>y<|reserved_special_token_250|>z <|reserved_special_token_999|>');
add('hf_overlap', '<|<|eot_id|>|> <|eot_id <|eot_id|><|eot_id|>');
add('hf_space_before_special', 'a <|endoftext|> b  <|eot_id|>  c');
add('hf_leading_space', ' leading space and  double');
add('hf_byte_alphabet', 'Ġ Ċ ĉ Ā ā ł Ń ĠĠ');
add('hf_long_spaces_words', 'word' + ' '.repeat(100) + 'word\n\n\n' + '\t'.repeat(20) + 'x');
// SentencePiece-style cases (SPEC.md §9.9): the metaspace character itself,
// characters outside the vocab (byte fallback), the special tokens <unk> <s> </s>.
add('sp_metaspace', '\u2581 \u2581\u2581x \u2581 a\u2581b  ');
add('sp_unknown_chars', '\u{10FFFF}\u{E000} \u{1F9D1}\u200D\u{1F52C} \u0378 \uFFFD');
add('sp_special_mid', 'a <s> b</s>  <unk>c');
add('sp_leading_specials', '<s>Hello <s> world</s>');
add('sp_unk_text', '<unk> is not </s>, nor <0x41>');

const bytesOf = (c) => (c.bytes ? new TextDecoder().decode(c.bytes) : c.text);

(async () => {
    fs.mkdirSync(outDir, { recursive: true });
    for (const name of MODELS.concat(Object.keys(VARIANTS))) {
        const base = VARIANTS[name] ? VARIANTS[name][0] : name;
        const file = path.join(dataDir, base + '.tokenizer.json');
        let json = fs.readFileSync(file, 'utf8');
        if (VARIANTS[name]) {
            const d0 = JSON.parse(json);
            d0.normalizer = null;
            d0.pre_tokenizer = VARIANTS[name][1];
            json = JSON.stringify(d0);
        }
        const full = Tokenizer.fromString(json);
        const d = JSON.parse(json);
        d.added_tokens = (d.added_tokens || []).filter((t) => !t.special);
        const plain = Tokenizer.fromString(JSON.stringify(d));
        // removing the special tokens must not renumber the others
        for (const t of d.added_tokens)
            if (plain.tokenToId(t.content) !== full.tokenToId(t.content))
                throw new Error(`${name}: added token ${JSON.stringify(t.content)} renumbered without the special tokens`);
        const lines = [];
        for (const c of cases) {
            const text = bytesOf(c);
            const o = { id: c.id };
            if (c.bytes) o.hex = c.bytes.toString('hex');
            else o.text = c.text;
            o.ordinary = (await plain.encode(text, null, { addSpecialTokens: false })).getIds();
            o.special = (await full.encode(text, null, { addSpecialTokens: false })).getIds();
            lines.push(JSON.stringify(o));
        }
        fs.writeFileSync(path.join(outDir, 'hf-' + name + '.jsonl'), lines.join('\n') + '\n');
        process.stderr.write(`gen-tokenizer-vectors-hf: @anush008/tokenizers ${version}: ${name}: ${lines.length} cases\n`);
    }
})().catch((e) => {
    process.stderr.write(`gen-tokenizer-vectors-hf: ${e.stack || e}\n`);
    process.exit(1);
});
