#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/) from the
test vectors; run from the repository root when the vectors change.

fuzz_tiktoken_encode: the text (or hex bytes) of every vector (up to 4096 bytes) of
testvectors/tokenizer/cl100k_base.jsonl, one file each.
fuzz_tiktoken_load: an encoding byte followed by small rank files: the 256
single bytes plus merges (as tests/test_tokenizer.c builds them), the first
lines of each official rank file when data/tokenizers has them, and the
malformed files of test_rank_file_errors."""
import base64, json, os

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
enc_dir = os.path.join(root, "fuzz", "corpus", "fuzz_tiktoken_encode")
load_dir = os.path.join(root, "fuzz", "corpus", "fuzz_tiktoken_load")
os.makedirs(enc_dir, exist_ok=True)
os.makedirs(load_dir, exist_ok=True)

with open(os.path.join(root, "testvectors", "tokenizer", "cl100k_base.jsonl"), encoding="utf-8") as f:
    for line in f:
        v = json.loads(line)
        data = v["text"].encode("utf-8") if "text" in v else bytes.fromhex(v["hex"])
        if len(data) > 4096:  # FUZZ_MAX_LEN: the long real texts add nothing the fuzzer keeps
            continue
        with open(os.path.join(enc_dir, v["id"]), "wb") as out:
            out.write(data)

def ranks(extra):
    lines = [base64.b64encode(bytes([b])).decode() + " %d" % b for b in range(256)]
    return ("\n".join(lines) + "\n" + extra).encode()

seeds = {
    "bytes": ranks(""),
    "merges": ranks("YWI= 256\nYmM= 257\nYWJj 258\nYWE= 259\nYWFhYQ== 260\n"),
    "crlf": ranks("YWI= 256\r\nYmM= 257\r\n\r\nYWJj 258"),
    "gap": ranks("YWI= 300\n"),
    "bad_b64": b"IQ== 0\nIg== 1\nI?== 2\n",
    "bad_len": b"IQ== 0\nIgA 1\n",
    "dup_rank": b"IQ== 0\nIg== 1\nIw== 1\n",
    "dup_token": b"IQ== 0\nIg== 1\nIQ== 2\n",
    "no_rank": b"IQ== 0\nIg==\n",
    "far_rank": b"IQ== 0\n\nIg== 99999999\n",
}
for name in ("cl100k_base", "o200k_base", "p50k_base", "r50k_base"):
    p = os.path.join(root, "data", "tokenizers", name + ".tiktoken")
    if os.path.exists(p):
        with open(p, "rb") as f:
            seeds["head_" + name] = b"".join(f.readline() for _ in range(400))
for i, (name, data) in enumerate(sorted(seeds.items())):
    with open(os.path.join(load_dir, name), "wb") as out:
        out.write(bytes([i % 4]) + data)

# fuzz_hf_load: small tokenizer.json files cut from the fetched GPT-2 and
# Llama 3 ones (the 256 byte-level symbols, the first merges whose parts and
# result are kept, the added tokens), plus a few malformed ones.
hf_dir = os.path.join(root, "fuzz", "corpus", "fuzz_hf_load")
os.makedirs(hf_dir, exist_ok=True)
def cut(src, n_merges, byte_tokens=False):
    with open(src, encoding="utf-8") as f:
        d = json.load(f)
    m = d["model"]
    vocab = m["vocab"]
    keep = {k: v for k, v in vocab.items() if len(k) == 1 or (byte_tokens and len(k) == 6 and k.startswith("<0x"))}
    merges = []
    for mg in m["merges"]:
        a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
        if a in keep and b in keep and a + b in vocab:
            keep[a + b] = vocab[a + b]
            merges.append(mg)
            if len(merges) >= n_merges:
                break
    m = dict(m, vocab=keep, merges=merges)
    d = dict(d, model=m, added_tokens=d.get("added_tokens", [])[:4], post_processor=None)
    return json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
for name in ("gpt2", "llama3"):
    p = os.path.join(root, "data", "tokenizers", name + ".tokenizer.json")
    if os.path.exists(p):
        with open(os.path.join(hf_dir, name + "_small"), "wb") as out:
            out.write(cut(p, 40))
# SentencePiece-style (SPEC.md §9.9): Mistral 7B's file cut the same way (its
# single characters and <0xNN> byte tokens), and two hand-written files.
p = os.path.join(root, "data", "tokenizers", "mistral.tokenizer.json")
if os.path.exists(p):
    with open(os.path.join(hf_dir, "mistral_small"), "wb") as out:
        out.write(cut(p, 40, byte_tokens=True))
M = "\u2581"
sp = {"version": "1.0",
      "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": M},
                     {"type": "Replace", "pattern": {"String": " "}, "content": M}]},
      "pre_tokenizer": None,
      "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": M}, "content": " "},
                  {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
      "added_tokens": [{"id": 0, "content": "<unk>", "special": True, "normalized": False},
                       {"id": 10, "content": "<s>", "special": True, "normalized": False}],
      "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True,
                "vocab": {"<unk>": 0, "<0x41>": 1, "<0xC3>": 2, "<0xA9>": 3, M: 4, "a": 5, "b": 6, M + "a": 7,
                          "ab": 8, M + "ab": 9, "<s>": 10},
                "merges": [M + " a", "a b", M + "a b"]}}
for name, (norm, pretok) in {
    "sp_small": (sp["normalizer"], None),
    "sp_metaspace": (None, {"type": "Metaspace", "replacement": M, "prepend_scheme": "first", "split": True}),
}.items():
    with open(os.path.join(hf_dir, name), "wb") as out:
        out.write(json.dumps(dict(sp, normalizer=norm, pre_tokenizer=pretok), ensure_ascii=False,
                             separators=(",", ":")).encode("utf-8"))
# Normalizers and added-token flags (SPEC.md §9.8, §9.10): the GPT-2 cut with
# NFKC and flagged added tokens; the SentencePiece file with a longer chain.
flags = [{"id": 0, "content": c, "special": sp_, "normalized": nm, "lstrip": ls, "rstrip": rs, "single_word": sw}
         for c, sp_, nm, ls, rs, sw in (("<l>", False, False, True, False, False), ("<r>", True, False, False, True, False),
                                        ("word", False, True, False, False, True), ("\ufb01x", False, True, False, False, False))]
p = os.path.join(root, "data", "tokenizers", "gpt2.tokenizer.json")
if os.path.exists(p):
    d = json.loads(cut(p, 40))
    d["normalizer"] = {"type": "NFKC"}
    d["added_tokens"] = d["added_tokens"] + flags
    with open(os.path.join(hf_dir, "gpt2_nfkc_flags"), "wb") as out:
        out.write(json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
chain = {"type": "Sequence", "normalizers": [{"type": "NFKD"}, {"type": "Lowercase"}, {"type": "Strip"},
                                             {"type": "NFC"}] + sp["normalizer"]["normalizers"]}
with open(os.path.join(hf_dir, "sp_norm_chain"), "wb") as out:
    out.write(json.dumps(dict(sp, normalizer=chain, added_tokens=sp["added_tokens"] + flags), ensure_ascii=False,
                         separators=(",", ":")).encode("utf-8"))
for name, data in {
    "not_json": b"{\"model\": ",
    "empty_object": b"{}",
    "wrong_model": b"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}",
    "no_merges": b"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
}.items():
    with open(os.path.join(hf_dir, name), "wb") as out:
        out.write(data)
