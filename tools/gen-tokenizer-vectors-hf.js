#!/usr/bin/env node
// gen-tokenizer-vectors-hf.js — oracle vectors for Hugging Face tokenizer.json (SPEC.md §9.8-9.10):
// the fetched files and the VARIANTS below (made from them; the C tests make them the same way).
//
// Tokenizes the corpus of gen-tokenizer-vectors.js (read back from the
// committed testvectors/tokenizer/cl100k_base.jsonl: its id and text/hex
// fields, so both generators see the same inputs) plus cases about added
// tokens, with npm `@anush008/tokenizers` (a native build of Hugging Face's
// Rust `tokenizers`), and writes testvectors/tokenizer/hf-<name>.jsonl:
//   {"id", "text" | "hex", "ordinary": [...], "special": [...]}
//   "special":  encode(text, addSpecialTokens=false) with the file as it is
//               (added tokens, special or not, are matched in the text)
//   "ordinary": the same with the special added tokens removed from the file
//               (SPEC.md §9.8: HF's encode_special_tokens=true, except where a
//               non-special added token overlaps a special one's text)
//   "decoded":  decode("special", skipSpecialTokens=false), a string
// and 20 lines {"id": "decode_random_K", "decode_ids": [...], "decoded"} that decode
// random ids (10 over the whole vocabulary, 10 below 300: bytes and byte tokens).
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
// Variants of a real file, made here and by the C tests the same way (SPEC.md §9.8-9.10): the base
// file with some of its top-level keys replaced (JSON.stringify of the parsed file with the keys set).
// Mistral 7B with its normalizer replaced by a Metaspace pre-tokenizer, as newer conversions of
// SentencePiece models (Mistral v0.3, Llama) write it; files with the normalizers of §9.10; a file
// with added tokens that use every flag (lstrip, rstrip, single_word, normalized, special; the
// special ones last, so that removing them renumbers nothing).
const SP_NORM = (first) => ({ type: 'Sequence', normalizers: [first, { type: 'Prepend', prepend: '\u2581' },
    { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] });
const FLAG_TOKENS = [
    { id: 0, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    { id: 0, content: '<l>', single_word: false, lstrip: true, rstrip: false, normalized: false, special: false },
    { id: 0, content: '<r>', single_word: false, lstrip: false, rstrip: true, normalized: true, special: false },
    { id: 0, content: 'word', single_word: true, lstrip: false, rstrip: false, normalized: true, special: false },
    { id: 0, content: '\uFB01x', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
    { id: 0, content: 'a\u0301b', single_word: false, lstrip: false, rstrip: false, normalized: false, special: false },
    { id: 0, content: ' hello', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
    { id: 0, content: 'x\u00E9', single_word: false, lstrip: false, rstrip: false, normalized: false, special: false },
    { id: 0, content: '<lr>', single_word: false, lstrip: true, rstrip: true, normalized: false, special: true },
    { id: 0, content: 'Sp', single_word: true, lstrip: true, rstrip: false, normalized: false, special: true },
];
// Mistral's three special tokens and three more: decoded through the decoder (Replace, ByteFallback)
const SP_ADDED = [
    { id: 0, content: '<unk>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    { id: 1, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    { id: 2, content: '</s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    { id: 0, content: 'q\u2581r', single_word: false, lstrip: false, rstrip: false, normalized: false, special: false },
    { id: 0, content: '<0x41>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: false },
    { id: 0, content: 'Zz', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
];
const VARIANTS = {
    'mistral-metaspace-first': ['mistral', { normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false } }],
    'mistral-metaspace-split': ['mistral', { normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true } }],
    'gpt2-nfkc': ['gpt2', { normalizer: { type: 'NFKC' } }],
    'gpt2-nfd-lower-strip': ['gpt2', { normalizer: { type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'Lowercase' }, { type: 'Strip', strip_left: true, strip_right: true }] } }],
    'llama3-nfc': ['llama3', { normalizer: { type: 'NFC' } }],
    'mistral-nfkc': ['mistral', { normalizer: SP_NORM({ type: 'NFKC' }), added_tokens: SP_ADDED }],
    'mistral-nfkd-lower': ['mistral', { normalizer: SP_NORM({ type: 'Sequence', normalizers: [{ type: 'NFKD' }, { type: 'Lowercase' }] }) }],
    'gpt2-added-flags': ['gpt2', { normalizer: { type: 'NFKC' }, added_tokens: FLAG_TOKENS }],
    'gpt2-added-flags-raw': ['gpt2', { added_tokens: FLAG_TOKENS }],
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

// Normalizers (SPEC.md §9.10): compatibility forms, combining sequences, Hangul, case, white space
// at the ends, and characters newer than the reference's Unicode 9.0 tables (they pass unchanged).
add('norm_compat', '\uFB01 \uFB02 \u2460 x\u00B2 \u00BD \u216B \uFF46\uFF55\uFF4C\uFF4C \u3300 \u210C \u2122 \u338F \uFE4F \u1E9B\u0323 \uFDFA');
add('norm_combining', 'e\u0301 a\u0308\u0323 \u1E0B\u0323 d\u0323\u0307 A\u030A \u212B \u2126 \u212A q\u0307\u0323 \u0958 \u0F73');
add('norm_hangul', '\uD55C\uAD6D\uC5B4 \u1112\u1161\u11AB \u1100\u1161 \uAC00\u11A8');
add('norm_case', '\u0130stanbul \u03A3\u0391\u03A3 \u00DF \u1E9E \u01C4 \u01C5 \u0041\u0042\u0043 \u10A0 \u24B6 \uFF21');
add('norm_strip', ' \t padded both \u3000\u00A0 ');
add('norm_newer_unicode', '\u32FF \u{1F16C} \u{1FBF5} \u0915\u093C\u1DF6\u0301 \u{11935}\u{11930} \uA7F2 \u{1E030} a\u0316\u1ACE\u0301 \u{10D50}\u{16EA0}\uA7CB');
// Added tokens with flags (variants gpt2-added-flags*)
add('added_lstrip_rstrip', 'a <lr>  b\t<lr>\nc<lr><lr> d  <l>e <l>  <r>  f<r>g <|endoftext|> <lr>');
add('added_single_word', 'word words sword word_ _word word. (word) 1word word1 \u00E9word word\u0301 Sp Spa aSp  Sp, Sp');
add('added_decoder', 'a x\u00E9 b q\u2581r c <0x41> Zz zZz \uFF3Az');
add('added_normalized', '\uFB01x fix a\u0301b \u00E1b  hello hello  \uFB01X');

const bytesOf = (c) => (c.bytes ? new TextDecoder().decode(c.bytes) : c.text);

(async () => {
    fs.mkdirSync(outDir, { recursive: true });
    for (const name of MODELS.concat(Object.keys(VARIANTS))) {
        const base = VARIANTS[name] ? VARIANTS[name][0] : name;
        const file = path.join(dataDir, base + '.tokenizer.json');
        let json = fs.readFileSync(file, 'utf8');
        if (VARIANTS[name]) {
            const d0 = JSON.parse(json);
            Object.assign(d0, VARIANTS[name][1]);
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
        // the variants of §9.10 keep the vectors small: the corpus without the long texts
        const some = (c) => !VARIANTS[name] || name.startsWith('mistral-metaspace-') || c.id === 'real_fortunes_de' || !/^(real_|long_|random_nospace_|spaces_)/.test(c.id);
        for (const c of cases.filter(some)) {
            const text = bytesOf(c);
            const o = { id: c.id };
            if (c.bytes) o.hex = c.bytes.toString('hex');
            else o.text = c.text;
            o.ordinary = (await plain.encode(text, null, { addSpecialTokens: false })).getIds();
            o.special = (await full.encode(text, null, { addSpecialTokens: false })).getIds();
            // decode(ids) with special tokens kept (SPEC.md §9.8-9.9)
            o.decoded = await full.decode(o.special, false);
            lines.push(JSON.stringify(o));
        }
        // decoding of id sequences that encoding does not produce: random ids (fixed seed)
        let seed = 12345;
        const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
        const nv = full.getVocabSize(true);
        for (let k = 0; k < 20; k++) {
            const ids = [];
            const n = 1 + Math.floor(rnd() * 12);
            for (let i = 0; i < n; i++) ids.push(k < 10 ? Math.floor(rnd() * nv) : Math.floor(rnd() * 300));
            lines.push(JSON.stringify({ id: 'decode_random_' + k, decode_ids: ids, decoded: await full.decode(ids, false) }));
        }
        fs.writeFileSync(path.join(outDir, 'hf-' + name + '.jsonl'), lines.join('\n') + '\n');
        process.stderr.write(`gen-tokenizer-vectors-hf: @anush008/tokenizers ${version}: ${name}: ${lines.length} cases\n`);
    }
})().catch((e) => {
    process.stderr.write(`gen-tokenizer-vectors-hf: ${e.stack || e}\n`);
    process.exit(1);
});
