# tokmark — top-level Makefile.  `make` builds the library and the CLI into build/.
PREFIX  ?= /usr/local
BUILD   ?= build
CC      ?= cc
PKGS    := libsodium libcrypto libpcre2-8 jansson libutf8proc
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
           -Wcast-qual -Wformat=2 -Wundef -Wvla -Wconversion -Wno-sign-conversion
OPT     ?= -O2 -g
CFLAGS  ?=
# -Werror in CI (CI=true) or on request (WERROR=1)
ifneq ($(filter true 1,$(CI) $(WERROR)),)
WARN += -Werror
endif
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(OPT) $(WARN) -fPIC -Iinclude -Isrc $(PKG_CFLAGS) $(CFLAGS)
LDLIBS  := $(PKG_LIBS) -lm -lpthread

LIB_SRC := $(wildcard src/*.c src/tok/*.c)
LIB_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
TEST_SRC := $(wildcard tests/test_*.c)
TESTS   := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
SOVER   := 0

.PHONY: all lib test bench asan ubsan tsan fuzz fuzz-build install clean vectors check-vectors tokenizer-vectors
all: lib $(BUILD)/tokmark $(BUILD)/tokmark-vectors $(BUILD)/tokmark.pc

lib: $(BUILD)/libtokmark.a $(BUILD)/libtokmark.so

$(BUILD)/obj/%.o: src/%.c include/tokmark.h src/internal.h $(wildcard src/*.h src/tok/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# Where built-in tokenizer names find their rank files (SPEC.md §9.7): the
# build tree's data/tokenizers (scripts/fetch-tokenizers.sh), then the installed copy.
$(BUILD)/obj/tok/tiktoken.o: ALL_CFLAGS += -DTM_DATA_DIR_BUILD='"$(CURDIR)/data/tokenizers"' \
    -DTM_DATA_DIR_INSTALL='"$(PREFIX)/share/tokmark/tokenizers"'

$(BUILD)/libtokmark.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@; ar rcs $@ $^

$(BUILD)/libtokmark.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libtokmark.so.$(SOVER) -o $@ $^ $(LDLIBS) $(LDFLAGS)

# The CLI: tools/tokmark.c (commands in tools/cmd_*.h) plus the tool-side
# modules in tools/cli/*.c (input reading, the reference LM, ...).  It reads
# JSON with jansson and compressed input with zlib and libzstd; `tokmark report`
# draws its PDF with cairo and pango (pangocairo), and releases fontconfig's caches.
CLI_PKGS   := jansson zlib libzstd pangocairo fontconfig
CLI_CFLAGS := $(shell pkg-config --cflags $(CLI_PKGS)) -Itools/cli
CLI_LIBS   := $(shell pkg-config --libs $(CLI_PKGS))
CLI_SRC    := $(wildcard tools/cli/*.c)
CLI_OBJ    := $(patsubst tools/cli/%.c,$(BUILD)/cli/%.o,$(CLI_SRC))
$(BUILD)/cli/%.o: tools/cli/%.c $(wildcard tools/cli/*.h) include/tokmark.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CLI_CFLAGS) -c $< -o $@
$(BUILD)/libtokmark-cli.a: $(CLI_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@; ar rcs $@ $^
$(BUILD)/tokmark: tools/tokmark.c $(wildcard tools/*.h tools/cli/*.h) $(BUILD)/libtokmark-cli.a $(BUILD)/libtokmark.a
	$(CC) $(ALL_CFLAGS) $(CLI_CFLAGS) -o $@ tools/tokmark.c $(BUILD)/libtokmark-cli.a $(BUILD)/libtokmark.a $(CLI_LIBS) $(LDLIBS) $(LDFLAGS)

$(BUILD)/tokmark-vectors: tools/tokmark-vectors.c $(BUILD)/libtokmark.a
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libtokmark.a $(LDLIBS) $(LDFLAGS)

$(BUILD)/tokmark.pc: tokmark.pc.in
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|0.1.0|' $< > $@

# ---- tests (cmocka) ----
# Tests link the library and the tool-side modules (tools/cli), so those are
# tested directly too.
TEST_LIBS := $(shell pkg-config --libs cmocka $(CLI_PKGS))
TEST_CFLAGS := $(shell pkg-config --cflags cmocka $(CLI_PKGS)) -Itools/cli
$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(BUILD)/libtokmark-cli.a $(BUILD)/libtokmark.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) -o $@ $< $(BUILD)/libtokmark-cli.a $(BUILD)/libtokmark.a $(TEST_LIBS) $(LDLIBS) $(LDFLAGS)

test: all $(TESTS)
	@bash tests/run.sh $(BUILD)

# The committed vectors must equal what the generator prints, on every backend.
check-vectors: $(BUILD)/tokmark-vectors
	@bash tests/check-vectors.sh $(BUILD)

vectors: $(BUILD)/tokmark-vectors
	$(BUILD)/tokmark-vectors testvectors

# Oracle vectors of the tokenizers (npm tiktoken, pinned; node only here, never in `make test`).
TIKTOKEN_NPM := tiktoken@1.0.22
# Hugging Face tokenizer.json oracle: native build of HF's Rust tokenizers (its
# linux-x64-gnu binary comes as an npm optional dependency).
HF_TOKENIZERS_NPM := @anush008/tokenizers@0.6.0
tokenizer-vectors:
	@test -f $(BUILD)/node/node_modules/tiktoken/package.json || \
	    npm install --silent --no-audit --no-fund --prefix $(BUILD)/node $(TIKTOKEN_NPM)
	@test -f $(BUILD)/node/node_modules/@anush008/tokenizers/package.json || \
	    npm install --silent --no-audit --no-fund --prefix $(BUILD)/node $(HF_TOKENIZERS_NPM)
	node tools/gen-tokenizer-vectors.js testvectors/tokenizer
	node tools/gen-tokenizer-vectors-hf.js testvectors/tokenizer
	node tools/gen-tokenizer-vectors-hf-norm.js testvectors/tokenizer

# ---- benchmarks ----
$(BUILD)/bench/%: bench/%.c $(BUILD)/libtokmark-cli.a $(BUILD)/libtokmark.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CLI_CFLAGS) -O3 -o $@ $< $(BUILD)/libtokmark-cli.a $(BUILD)/libtokmark.a $(CLI_LIBS) $(LDLIBS) $(LDFLAGS)
bench: $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
	@for b in $^; do $$b || exit 1; done

# ---- evaluation (docs/EVAL.md): power, quality, robustness, false positives,
# radioactivity on the reference LM; builds data/corpus when missing; the
# teacher model is cached in $(BUILD)/eval/; about 10 minutes on 2 cores ----
.PHONY: eval
EVAL_SRC := eval/eval.c eval/evalutil.c
$(BUILD)/eval/eval: $(EVAL_SRC) eval/evalutil.h $(wildcard tools/cli/*.h) $(BUILD)/libtokmark-cli.a $(BUILD)/libtokmark.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CLI_CFLAGS) -Ieval -o $@ $(EVAL_SRC) $(BUILD)/libtokmark-cli.a $(BUILD)/libtokmark.a $(CLI_LIBS) $(LDLIBS) $(LDFLAGS)
eval: $(BUILD)/eval/eval
	@test -d data/corpus/train -a -d data/corpus/heldout || sh scripts/build-corpus.sh
	$(BUILD)/eval/eval --corpus data/corpus --out $(BUILD)/eval --docs docs $(EVAL_ARGS) > $(BUILD)/eval/results.md
	@cat $(BUILD)/eval/results.md
$(BUILD)/tests/test_eval: tests/test_eval.c $(EVAL_SRC) eval/evalutil.h $(wildcard tests/*.h) $(BUILD)/libtokmark-cli.a $(BUILD)/libtokmark.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) -Ieval -o $@ tests/test_eval.c eval/evalutil.c $(BUILD)/libtokmark-cli.a $(BUILD)/libtokmark.a $(TEST_LIBS) $(LDLIBS) $(LDFLAGS)

# ---- sanitizers: separate build trees ----
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fsanitize=address -fno-omit-frame-pointer" \
	    LDFLAGS="-fsanitize=address" test
ubsan:
	$(MAKE) BUILD=build-ubsan OPT="-O1 -g -fsanitize=undefined -fno-sanitize-recover=all" \
	    LDFLAGS="-fsanitize=undefined" test
# threads: scan -j and detectors that share a corpus set (SPEC §7.6)
tsan:
	TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp" \
	    $(MAKE) BUILD=build-tsan OPT="-O1 -g -fsanitize=thread" LDFLAGS="-fsanitize=thread" test

# ---- fuzzing (libFuzzer; clang only; never part of `make test`) ----
# `make fuzz` builds the tokenizer module and every fuzz/fuzz_*.c with
# -fsanitize=fuzzer,address,undefined into build-fuzz/ and runs each target for
# FUZZ_SECONDS, starting from the seeds in fuzz/corpus/<target>/ (read only);
# what it learns goes to build-fuzz/corpus/<target>/, crashes to
# build-fuzz/artifacts/.  Needs data/tokenizers (scripts/fetch-tokenizers.sh).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_MAX_LEN ?= 4096
FUZZ_BUILD   := build-fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c11 -D_POSIX_C_SOURCE=200809L -O1 -g $(WARN) $(FUZZ_SAN) -Iinclude -Isrc $(PKG_CFLAGS)
FUZZ_TARGETS := $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_BINS    := $(addprefix $(FUZZ_BUILD)/,$(FUZZ_TARGETS))
# Only the tokenizer module (and error names): the rest of the library is not
# fuzzed here, and src/prf.c needs a newer clang than 14 (cpu feature "vaes").
FUZZ_LIB_OBJ := $(patsubst src/%.c,$(FUZZ_BUILD)/obj/%.o,src/error.c $(wildcard src/tok/*.c))

$(FUZZ_BUILD)/obj/%.o: src/%.c include/tokmark.h $(wildcard src/*.h src/tok/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FUZZ_BUILD)/obj/tok/tiktoken.o: FUZZ_CFLAGS += -DTM_DATA_DIR_BUILD='"$(CURDIR)/data/tokenizers"' \
    -DTM_DATA_DIR_INSTALL='"$(PREFIX)/share/tokmark/tokenizers"'

$(FUZZ_BUILD)/libtokmark-tok.a: $(FUZZ_LIB_OBJ)
	rm -f $@; ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_util.h include/tokmark.h src/tok/tok.h $(FUZZ_BUILD)/libtokmark-tok.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/libtokmark-tok.a $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/artifacts && \
	    echo "== $$t: $(FUZZ_SECONDS) s" && \
	    $(FUZZ_BUILD)/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAX_LEN) -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t- $(FUZZ_BUILD)/corpus/$$t fuzz/corpus/$$t \
	        || exit 1; \
	done

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/tokmark.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libtokmark.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libtokmark.so $(DESTDIR)$(PREFIX)/lib/libtokmark.so.$(SOVER)
	ln -sf libtokmark.so.$(SOVER) $(DESTDIR)$(PREFIX)/lib/libtokmark.so
	install -m 644 $(BUILD)/tokmark.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	install -m 755 $(BUILD)/tokmark $(DESTDIR)$(PREFIX)/bin/
	@if ls data/tokenizers/*.tiktoken >/dev/null 2>&1; then \
	    install -d $(DESTDIR)$(PREFIX)/share/tokmark/tokenizers && \
	    install -m 644 data/tokenizers/*.tiktoken $(DESTDIR)$(PREFIX)/share/tokmark/tokenizers/; \
	else echo "install: no data/tokenizers/*.tiktoken (run scripts/fetch-tokenizers.sh) - tokenizers not installed"; fi

clean:
	rm -rf build build-asan build-ubsan build-fuzz
