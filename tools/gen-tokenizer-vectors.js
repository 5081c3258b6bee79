#!/usr/bin/env node
// gen-tokenizer-vectors.js — oracle vectors for the tiktoken encodings (SPEC.md §9).
//
// Tokenizes a multilingual and adversarial corpus with npm `tiktoken` (the
// WebAssembly build of OpenAI's Rust tiktoken) and writes
// testvectors/tokenizer/<encoding>.jsonl, one case per line:
//   {"id": ..., "text": "..."} or {"id": ..., "hex": "..."}   the input (hex: raw bytes,
//        possibly ill-formed UTF-8; the oracle saw new TextDecoder().decode(bytes))
//   "ordinary": ids of enc.encode_ordinary(text)
//   "special":  ids of enc.encode(text, "all")
// and testvectors/tokenizer/tiktoken-decode.jsonl: {"encoding", "id", "decode_ids",
// "decoded_hex"}, enc.decode of 20 random id sequences per encoding (see below).
// The test suite reads these files; it never needs node.
//
// Usage: node tools/gen-tokenizer-vectors.js [OUTDIR]   (make tokenizer-vectors)
// Needs tiktoken under build/node (npm install --prefix build/node tiktoken@1.0.22)
// and reads real text from Debian files (common-licenses, man pages, fortunes-de,
// fortunes-es, fortunes-ru, fortunes-zh).
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const root = path.resolve(__dirname, '..');
const modDir = process.env.TIKTOKEN_MODULE || path.join(root, 'build/node/node_modules/tiktoken');
const tiktoken = require(modDir);
const version = JSON.parse(fs.readFileSync(path.join(modDir, 'package.json'), 'utf8')).version;
const outDir = process.argv[2] || path.join(root, 'testvectors/tokenizer');
const ENCODINGS = ['cl100k_base', 'o200k_base', 'p50k_base', 'r50k_base'];

// ---- deterministic PRNG (mulberry32) ----
let seed = 0x746f6b31; // "tok1"
function rnd() {
    seed = (seed + 0x6D2B79F5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];

const cases = []; // {id, text} | {id, bytes}
const add = (id, text) => cases.push({ id, text });
const addBytes = (id, hex) => cases.push({ id, bytes: Buffer.from(hex.replace(/ /g, ''), 'hex') });

// ---- hand-written cases ----
add('ascii_hello', 'Hello, world!');
add('empty', '');
add('single_space', ' ');
add('bom_start', '\uFEFFHello world');
add('bom_only', '\uFEFF');
add('bom_middle', 'a\uFEFFb \uFEFF c');
add('bom_twice', '\uFEFF\uFEFF text\uFEFF');
add('cjk_zh', '我们在中华人民共和国的首都北京。今天天气很好！');
add('cjk_ja', '日本語のテキストです。カタカナとひらがな、漢字が混ざっています。');
add('cjk_ko', '안녕하세요, 세계! 한국어 텍스트입니다.');
add('emoji_zwj_family', '👨‍👩‍👧‍👦 family and 👩‍❤️‍💋‍👨 kiss');
add('emoji_skin', '👍🏽👋🏿 ok 🧑🏻‍💻 coder 🏳️‍🌈 flag 🇩🇪🇫🇷');
add('emoji_run', '😀😃😄😁😆😅🤣😂🙂🙃😉😊😇');
add('combining', 'e\u0301 n\u0303 o\u0308 a\u030A\u0301 Z\u0337\u0322\u035A\u0344a\u0338l\u0336g\u0335o\u0334');
add('combining_only', '\u0301\u0302\u0303 \u0301x');
add('rtl_ar', 'مرحبا بالعالم! هذا نص عربي مع أرقام ١٢٣٤٥ و 6789.');
add('rtl_he', 'שלום עולם, זהו טקסט בעברית עם ניקוד: שָׁלוֹם.');
add('rtl_marks', 'abc \u200Fשלום\u200E def \u202Bمرحبا\u202C');
for (const n of [1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 64, 100, 257]) add('spaces_' + n, 'x' + ' '.repeat(n) + 'y' + ' '.repeat(n));
add('spaces_only_40', ' '.repeat(40));
add('newlines', 'a\n\nb\n\n\n\nc\r\n\r\nd\n \n \n');
add('tabs', '\tindent\t\t\tmore\t \t x\t');
add('code_indent', 'def f(x):\n    if x:\n        return x + 1\n    return 0\n\n\n');
add('trailing_ws', 'hello   \n   world   ');
add('unicode_spaces', 'a\u00A0\u00A0b\u3000c\u2028d\u2029e\u0085f\u2003\u2003g\u202Fh\u205Fi\u1680j');
add('mongolian_vowel_sep', 'a\u180Eb \u180E c\u180E\u180E');
add('vertical_ws', 'a\u000Bb\u000Cc\r\rd');
for (const d of ['1', '12', '123', '1234', '12345', '1234567890123456789012345', '3.14159265358979', '1,000,000.00', '2024-01-02T03:04:05Z'])
    add('digits_' + d.length + '_' + d.replace(/[^0-9]/g, '').slice(0, 6), d);
add('digits_letters', 'abc123def4567ghi89 x1y22z333');
add('digits_unicode', '٣٤٥ ۱۲۳ १२३ １２３４ ①②③ Ⅻ ½¾ ²³');
add('punct_runs', '!!! ??? ... ,,, ;;; --- === +++ *** ((())) [[[]]] {{{}}} <<<>>> ~~~ ^^^ ___');
add('punct_mixed', 'Wait...what?!?! "quoted" \'single\' «guillemets» „German“ — dash – en');
add('url', 'https://example.com/path/to/file.html?query=1&x=y#frag and a/b/c//d');
add('json', '{"key": [1, 2, {"x": null}], "s": "a\\"b"}\n');
add('contractions_lower', "it's we'll they're I've I'm he'd don't can't 's 't 're 've 'm 'll 'd");
add('contractions_upper', "IT'S WE'LL THEY'RE I'VE I'M HE'D DON'T 'S 'T 'RE 'VE 'M 'LL 'D");
add('contractions_mixed', "We'Ll they'Re I'Ve He'D 'Ll 'rE 'vE x'S");
add('contractions_long_s', "it'ſ 'ſ x'ſſ");
add('contractions_curly', 'it’s we’ll don’t');
add('apostrophes', "'''' ' ' a'b 'abc' ''s");
add('special_eot', '<|endoftext|>');
add('special_in_text', 'hello <|endoftext|> world<|endoftext|>');
add('special_fim', '<|fim_prefix|>def f():<|fim_suffix|>\n    pass<|fim_middle|>x');
add('special_prompt', 'question<|endofprompt|>answer');
add('special_partial', '<|endoftext <|endoftext| <endoftext|> <||> <|');
add('special_nested', '<<|endoftext|>> <|<|endoftext|>|>');
add('special_adjacent', '<|endoftext|><|endoftext|><|fim_prefix|><|endofprompt|>');
add('long_word_a1000', 'a'.repeat(1000));
add('long_word_ab', 'ab'.repeat(400));
add('long_word_real', 'antidisestablishmentarianism'.repeat(12));
add('long_word_caps', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'.repeat(8) + 'lower');
add('long_digits', '9'.repeat(500));
add('long_punct', '-=+*'.repeat(100));
add('long_spaces_nl', ' '.repeat(300) + '\n' + ' '.repeat(300));
add('long_cjk', '的'.repeat(300) + '是'.repeat(100));
add('long_emoji', '🙂'.repeat(200));
add('mixed_case_words', 'camelCaseWord PascalCase HTTPServer XMLHttpRequest iPhone ΑΒΓαβγ DŽungla ǅungla');
add('greek_cyrillic', 'Ελληνικά κείμενα και Русский текст с ЗАГЛАВНЫМИ буквами.');
add('indic', 'हिन्दी पाठ और বাংলা লেখা এবং தமிழ் உரை');
add('thai', 'ภาษาไทยไม่มีช่องว่างระหว่างคำ');
add('control_chars', 'a\u0000b\u0001c\u007Fd\u001Be');
add('private_use', '\uE000\uF8FF \u{F0000}x');
add('noncharacters', '\uFFFE\uFFFF\u{1FFFE} \uFFFD');
add('unicode15_letters', 'a\u{31350}b \u{11F04}\u{11F05} \u{1E4D0}\u{1E4D1}x \u{2EBF0}y');
add('unicode16_letters', 'a\u{10D4A}b \u{16100}c \u{1E5D0}d');
add('supplementary_math', '𝐀𝐁𝐂 𝑎𝑏𝑐 𝟎𝟏𝟐');

// seeded random strings over mixed blocks
const pools = [
    'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ',
    '0123456789',
    ' \t\n\r   ',
    '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~',
    'äöüßÄÖÜéèêçñ',
    '中文字符汉语日本語かなカナ한국어',
    'абвгдеёжзийклмнопрстуфхцчшщъыьэюя',
    '\u0301\u0308\u200D\uFE0F\uFEFF\u00A0\u3000',
    '😀👍🏽👨‍👩‍👧🇩🇪',
];
for (let k = 0; k < 40; k++) {
    let s = '';
    const n = 20 + Math.floor(rnd() * 200);
    for (let i = 0; i < n; i++) s += pick(Array.from(pick(pools)));
    add('random_' + k, s);
}
for (let k = 0; k < 8; k++) {
    let s = '';
    const n = 200 + Math.floor(rnd() * 600);
    for (let i = 0; i < n; i++) s += pick(Array.from('abcdefghijklmnopqrstuvwxyz'));
    add('random_nospace_' + k, s);
}

// ill-formed UTF-8: the oracle sees TextDecoder's replacement
addBytes('invalid_ff', 'ff');
addBytes('invalid_overlong', 'c0af 41 e08080 42');
addBytes('invalid_surrogate', 'eda080 edbfbf 41');
addBytes('invalid_too_big', 'f4908080 f5 41');
addBytes('invalid_truncated', '68656c6c6f20e282 20f09f98 20e2');
addBytes('invalid_continuations', '8080 bf 41 c2 42');
addBytes('invalid_mixed', '48656c6c6f20ff20776f726c6420e4b8ad20fe');
addBytes('invalid_at_end', '616263f0');

// ---- real text from Debian packages ----
function chunk(buf, start, max) {
    // whole lines, valid UTF-8 only
    let s = new TextDecoder('utf-8', { fatal: true }).decode(buf);
    s = s.slice(start);
    if (s.length > max) s = s.slice(0, s.lastIndexOf('\n', max) + 1);
    return s;
}
function readMaybeGz(f) {
    const b = fs.readFileSync(f);
    return f.endsWith('.gz') ? zlib.gunzipSync(b) : b;
}
const sources = [
    ['gpl3', '/usr/share/common-licenses/GPL-3', 0, 12000],
    ['apache2', '/usr/share/common-licenses/Apache-2.0', 0, 4000],
    ['man_bash', '/usr/share/man/man1/bash.1.gz', 20000, 8000],
    ['man_tar', '/usr/share/man/man1/tar.1.gz', 0, 4000],
    ['man_ja_apropos', '/usr/share/man/ja/man1/apropos.1.gz', 0, 4000],
    ['man_ru_apropos', '/usr/share/man/ru/man1/apropos.1.gz', 0, 4000],
    ['fortunes_de', '/usr/share/games/fortunes/de/anekdoten.u8', 0, 5000],
    ['fortunes_es', '/usr/share/games/fortunes/es/ciencia.fortunes.u8', 0, 5000],
    ['fortunes_ru', '/usr/share/games/fortunes/ru/2001.03.u8', 0, 5000],
    ['fortunes_zh', '/usr/share/games/fortunes/chinese.u8', 0, 5000],
];
const sourcesUsed = [];
for (const [id, f, start, max] of sources) {
    let text;
    try {
        text = chunk(readMaybeGz(f), start, max);
    } catch (e) {
        process.stderr.write(`gen-tokenizer-vectors: ${f}: ${e.message} (install the Debian package that has it)\n`);
        process.exit(1);
    }
    add('real_' + id, text);
    sourcesUsed.push(f);
}

// ---- tokenize ----
fs.mkdirSync(outDir, { recursive: true });
let total = 0;
for (const name of ENCODINGS) {
    const enc = tiktoken.get_encoding(name);
    const lines = [];
    for (const c of cases) {
        const text = c.bytes ? new TextDecoder().decode(c.bytes) : c.text;
        const o = { id: c.id };
        if (c.bytes) o.hex = c.bytes.toString('hex');
        else o.text = c.text;
        o.ordinary = Array.from(enc.encode_ordinary(text));
        o.special = Array.from(enc.encode(text, 'all'));
        lines.push(JSON.stringify(o));
    }
    enc.free();
    fs.writeFileSync(path.join(outDir, name + '.jsonl'), lines.join('\n') + '\n');
    total += lines.length;
}
// decode of id sequences that encoding does not produce (SPEC.md §9.6): per encoding 20 random
// sequences (fixed seed) of ids that tiktoken can decode (some below 300: single bytes, so that
// characters are split), with special tokens among them; the bytes as hex.
const dec = [];
let dseed = 20240601;
const drnd = () => ((dseed = (Math.imul(dseed, 1103515245) + 12345) >>> 0) / 4294967296);
const N_VOCAB = { cl100k_base: 100277, o200k_base: 200019, p50k_base: 50281, r50k_base: 50257 }; // SPEC.md §9.2
for (const name of ENCODINGS) {
    const enc = tiktoken.get_encoding(name);
    const nv = N_VOCAB[name];
    for (let k = 0; k < 20; k++) {
        const ids = [];
        const n = 1 + Math.floor(drnd() * 12);
        while (ids.length < n) {
            const id = k < 10 ? Math.floor(drnd() * nv) : Math.floor(drnd() * 300);
            try {
                enc.decode(new Uint32Array([id]));
                ids.push(id);
            } catch (e) { /* no token of that id */ }
        }
        if (k === 9) ids.push({ cl100k_base: 100257, o200k_base: 199999 }[name] || 50256); // <|endoftext|>
        const bytes = Buffer.from(enc.decode(new Uint32Array(ids)));
        dec.push(JSON.stringify({ encoding: name, id: 'decode_random_' + k, decode_ids: ids, decoded_hex: bytes.toString('hex') }));
    }
    enc.free();
}
fs.writeFileSync(path.join(outDir, 'tiktoken-decode.jsonl'), dec.join('\n') + '\n');
process.stderr.write(`gen-tokenizer-vectors: tiktoken ${version}: ${cases.length} cases x ${ENCODINGS.length} encodings = ${total} vectors in ${outDir}\n`);
process.stderr.write(`gen-tokenizer-vectors: real text from ${sourcesUsed.join(', ')}\n`);
