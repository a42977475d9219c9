# Veil - privacy-first web analytics.
#
#   make            build both daemons
#   make test       install what is missing, build, run every test
#   make run        install what is missing, build, start redis + collector + aggregator
#   make bench      benchmarks side by side with a reference (see docs/BENCHMARKS.md)
#   make install PREFIX=/usr/local DESTDIR=
#
# Knobs: SANITIZER=address (ASan+UBSan) | undefined, OPT=, DEBUG=, WERROR=1.

VERSION  := 0.1.0
CC       ?= cc
PREFIX   ?= /usr/local
DESTDIR  ?=

WARN     ?= -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wformat=2 -Wno-format-nonliteral -Wpointer-arith -Wcast-qual -Wvla
OPT      ?= -O2
DEBUG    ?= -g
STD      := -std=c11 -D_GNU_SOURCE
PKGS     := libevent libevent_pthreads hiredis libmaxminddb libsodium libpcre2-8 yaml-0.1 libcjson

ifeq ($(WERROR),1)
WARN += -Werror
endif

BUILD    := build
ifeq ($(SANITIZER),address)
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
BUILD    := build-asan
OPT      := -O1
else ifeq ($(SANITIZER),undefined)
SANFLAGS := -fsanitize=undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
BUILD    := build-ubsan
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CPPFLAGS += -Iinclude -DVEIL_VERSION='"$(VERSION)"' \
            -DVEIL_DATADIR='"$(PREFIX)/share/veil"'
CFLAGS   += $(STD) $(WARN) $(OPT) $(DEBUG) $(SANFLAGS) -MMD -MP $(PKG_CFLAGS) -pthread
LDFLAGS  += $(SANFLAGS) -pthread
# http_parser (libhttp-parser-dev) ships no pkg-config file.
LDLIBS   += $(PKG_LIBS) -lhttp_parser -lm

COMMON_SRC     := $(wildcard common/*.c)
COLLECTOR_SRC  := $(filter-out collector/main.c,$(wildcard collector/*.c))
AGGREGATOR_SRC := $(filter-out aggregator/main.c,$(wildcard aggregator/*.c))
UNIT_SRC       := $(wildcard tests/unit/test_*.c)
INTEG_SRC      := $(wildcard tests/integration/test_*.c)
HARNESS_SRC    := $(wildcard tests/harness/*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

COMMON_LIB     := $(BUILD)/libveil_common.a
COLLECTOR_LIB  := $(BUILD)/libveil_collector.a
AGGREGATOR_LIB := $(BUILD)/libveil_aggregator.a
HARNESS_LIB    := $(BUILD)/libveil_harness.a

COLLECTOR_BIN  := $(BUILD)/veil-collector
AGGREGATOR_BIN := $(BUILD)/veil-aggregator
UNIT_BINS      := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
INTEG_BINS     := $(patsubst tests/integration/%.c,$(BUILD)/tests/%,$(INTEG_SRC))

TRACKER_JS     := $(BUILD)/tracker/veil.js
DASHBOARD_HTML := $(BUILD)/dashboard/index.html
NODE_DEPS      := node_modules/.package-lock.json

.PHONY: all deps test test-build test-unit test-integration test-browser run bench fuzz install clean sample-config
.DEFAULT_GOAL := all

all: $(COLLECTOR_BIN) $(AGGREGATOR_BIN) $(TRACKER_JS) $(DASHBOARD_HTML)

$(NODE_DEPS): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm missing: run scripts/deps.sh build" >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# veil.js: minified by esbuild; the build fails above 1.5 KB gzipped.
$(TRACKER_JS): tracker/veil.js tracker/build.mjs $(NODE_DEPS)
	node tracker/build.mjs $(BUILD)/tracker

$(DASHBOARD_HTML): $(wildcard dashboard/*) $(NODE_DEPS)
	node dashboard/build.mjs $(BUILD)/dashboard

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Icollector -Iaggregator -Itests/harness $(CFLAGS) -c $< -o $@

$(COMMON_LIB): $(call obj,$(COMMON_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^
$(COLLECTOR_LIB): $(call obj,$(COLLECTOR_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^
$(AGGREGATOR_LIB): $(call obj,$(AGGREGATOR_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^
$(HARNESS_LIB): $(call obj,$(HARNESS_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(COLLECTOR_BIN): $(call obj,collector/main.c) $(COLLECTOR_LIB) $(COMMON_LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@
$(AGGREGATOR_BIN): $(call obj,aggregator/main.c) $(AGGREGATOR_LIB) $(COMMON_LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/%: $(call obj,tests/unit/%.c) $(COLLECTOR_LIB) $(AGGREGATOR_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcriterion -o $@

$(BUILD)/tests/test_it_%: $(call obj,tests/integration/test_it_%.c) $(HARNESS_LIB) $(COLLECTOR_LIB) $(AGGREGATOR_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcriterion -o $@

# Test fixtures built from source by the tests' own tools.
GEO_FIXTURE := $(BUILD)/fixtures/geo-test.mmdb
$(GEO_FIXTURE): tests/fixtures/make-geo-fixture.pl
	@mkdir -p $(dir $@)
	perl $< $@

deps:
	@scripts/deps.sh build

test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory test-build
	@BUILD=$(BUILD) scripts/run-tests.sh

test-build: all $(UNIT_BINS) $(INTEG_BINS) $(GEO_FIXTURE)

test-unit: all $(UNIT_BINS) $(GEO_FIXTURE)
	@BUILD=$(BUILD) scripts/run-tests.sh unit

test-integration: all $(INTEG_BINS) $(GEO_FIXTURE)
	@BUILD=$(BUILD) scripts/run-tests.sh integration

# Headless Chromium against the real binaries (tests/browser/).
test-browser: all
	@BUILD=$(BUILD) scripts/run-tests.sh browser

run:
	@scripts/deps.sh run
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) scripts/run.sh

# Benchmarks side by side with nginx in the same run (docs/BENCHMARKS.md):
# about 10 minutes, stops by itself; knobs BENCH_* in bench/bench.py.
bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) /usr/bin/python3 bench/bench.py

sample-config: $(COLLECTOR_BIN) $(AGGREGATOR_BIN)
	$(COLLECTOR_BIN) --sample-config > deploy/veil.conf
	$(AGGREGATOR_BIN) --sample-config > deploy/veil-aggregator.conf
	$(COLLECTOR_BIN) --markdown-config > docs/config-collector.md
	$(AGGREGATOR_BIN) --markdown-config > docs/config-aggregator.md

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/veil $(DESTDIR)/etc/veil
	install -m 0755 $(COLLECTOR_BIN) $(AGGREGATOR_BIN) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(TRACKER_JS) $(DESTDIR)$(PREFIX)/share/veil/veil.js
	cp -r $(BUILD)/dashboard $(DESTDIR)$(PREFIX)/share/veil/
	install -m 0644 deploy/veil.conf deploy/veil-aggregator.conf $(DESTDIR)/etc/veil/

clean:
	rm -rf build build-asan build-ubsan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Fuzzing (fuzz/README.md): one libFuzzer target per parser, built with clang
# and ASan+UBSan into build-fuzz/. `make fuzz` runs each for FUZZ_SECONDS on a
# working corpus seeded from fuzz/corpus/<target>/ and fails on any crash;
# `make fuzz FUZZ_TARGETS="ua url"` runs only those. Not part of `make test`.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_BUILD   := build-fuzz
FUZZ_NAMES   := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_HARNESS := $(filter-out fuzz/fuzz_%.c,$(wildcard fuzz/*.c))
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := $(STD) $(WARN) -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP $(PKG_CFLAGS) -pthread
FUZZ_LIB     := $(FUZZ_BUILD)/libveil_fuzz.a

.PHONY: fuzz-build fuzz-clean fuzz-deps
fuzz-build: fuzz-deps $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_NAMES))
fuzz-deps:
	@scripts/deps.sh fuzz
fuzz: fuzz-build
	@FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh $(FUZZ_TARGETS)
fuzz-clean:
	rm -rf $(FUZZ_BUILD)
$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) -Icollector $(FUZZ_CFLAGS) -c $< -o $@
$(FUZZ_LIB): $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(COMMON_SRC) $(COLLECTOR_SRC) $(FUZZ_HARNESS))
	$(AR) rcs $@ $^
$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/fuzz/fuzz_%.o $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -pthread $^ $(LDLIBS) -o $@
-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
