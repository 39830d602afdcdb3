# tokenvend build. `make` builds both binaries; `make help` lists the targets.
# BUILD=dir puts every output under that directory (parallel work trees use their own).
BUILD    ?= build
CC       ?= cc
PKGS     := libmicrohttpd libcurl openssl json-c sqlite3 libargon2 libpq
# The warning list lives in mk/warnings.txt so scripts/fuzz.sh uses the very same one.
WARN     := $(strip $(shell sed 's/\#.*//' mk/warnings.txt))
# Warnings are errors only when asked (WERROR=1; .ci/run and the Dockerfile ask), never by a
# runner's environment, so a CI run and a developer's run of the same command agree.
ifneq ($(WERROR),)
WARN     += -Werror
endif
OPT      ?= -O2 -g
# Release hardening (the Dockerfile builds with these too, through this Makefile): checked libc
# calls, stack canaries, a read-only GOT bound at start. Off under the sanitizers, whose
# interceptors the _chk variants would bypass, and at -O0, where _FORTIFY_SOURCE does nothing
# but warn. HARDEN= turns it off.
HARDEN   ?= 1
HARDEN_CFLAGS  := -D_FORTIFY_SOURCE=2 -fstack-protector-strong
HARDEN_LDFLAGS := -Wl,-z,relro,-z,now
CFLAGS   += -std=c17 -D_GNU_SOURCE $(OPT) $(WARN) -Iinclude -MMD -MP \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
ifneq ($(SANITIZE),)
CFLAGS   += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=$(SANITIZE)
else ifneq ($(HARDEN),)
ifeq ($(filter -O0,$(OPT)),)
CFLAGS   += $(HARDEN_CFLAGS)
LDFLAGS  += $(HARDEN_LDFLAGS)
endif
endif

# Library objects of tokenvend: every module but its main, so tests can link any of them.
LIB_SRC  := $(wildcard src/core/*.c src/acs/*.c src/http/*.c src/store/*.c src/auth/*.c \
                      src/service/*.c src/api/*.c src/cli/*.c src/app.c src/app_check.c)
# acs-emulator is a separate program: its modules form their own library, with their headers
# private to src/emulator, linked only into acs-emulator and the emulator's unit tests, so the
# service binary cannot reach them (it links libtokenvend.a alone).
EMU_SRC  := $(filter-out src/emulator/main.c,$(wildcard src/emulator/*.c))
EMU_OBJ  := $(EMU_SRC:%.c=$(BUILD)/obj/%.o)
EMU_LIB  := $(BUILD)/libemu.a
# The SQL migrations are compiled into the binary, so it never depends on where it runs from.
MIGRATIONS := $(sort $(wildcard migrations/[0-9][0-9][0-9][0-9]_*.sql))
GEN_SRC  := $(BUILD)/gen/migrations.c
# The same migrations in PostgreSQL's dialect (same numbers and names), for the PostgreSQL store.
PG_MIGRATIONS := $(sort $(wildcard migrations/postgres/[0-9][0-9][0-9][0-9]_*.sql))
PG_GEN_SRC := $(BUILD)/gen/pg_migrations.c
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/migrations.o \
            $(BUILD)/obj/gen/pg_migrations.o
# GET /openapi.json: docs/openapi.yaml cut per listener into JSON at build time by
# tools/openapi (openapi-gen), embedded like the migrations. Only that tool and its unit test
# link libyaml; the service binary gets the JSON bytes and never parses YAML.
OPENAPI_YAML := docs/openapi.yaml
OPENAPI_TOOL := $(BUILD)/tools/openapi-gen
OPENAPI_TOOL_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tools/openapi/*.c))
OPENAPI_TOOL_LIB_OBJ := $(filter-out %/main.o,$(OPENAPI_TOOL_OBJ))
OPENAPI_GEN_SRC := $(BUILD)/gen/openapi.c
YAML_CFLAGS  := $(shell pkg-config --cflags yaml-0.1 2>/dev/null)
YAML_LDLIBS  := $(shell pkg-config --libs yaml-0.1 json-c 2>/dev/null)
LIB_OBJ  += $(BUILD)/obj/gen/openapi.o
LIB      := $(BUILD)/libtokenvend.a

UNIT_SRC := $(wildcard tests/unit/test_*.c)
INTEG_SRC:= $(wildcard tests/integration/test_*.c)
TLIB_SRC := $(wildcard tests/lib/*.c)
TLIB_OBJ := $(TLIB_SRC:%.c=$(BUILD)/obj/%.o)
TEST_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%) \
            $(INTEG_SRC:tests/integration/%.c=$(BUILD)/tests/integration/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
# Test code alone sees the test helpers (tests/lib) and the modules' private headers through
# src/ ("emulator/app.h", "http/http_int.h"); production objects are built without either path.
TEST_CFLAGS := -Itests/lib -Isrc

BINS     := $(BUILD)/bin/tokenvend $(BUILD)/bin/acs-emulator

# The suites that run threads (HTTP server, service workers and outbox, ACS client, JWKS fetcher,
# store, caches) are the ones `make tsan` runs under ThreadSanitizer. A report stops the process
# with exit 66, so the suite counts as failed; the emulator the tests start is built with TSan too.
TSAN_SUITES := integration/test_http_server integration/test_http_wipe integration/test_service \
               integration/test_http_head integration/test_http_deadlines \
               integration/test_acs_client integration/test_keyless integration/test_emulator_bearer \
               unit/test_store unit/test_store_tables unit/test_jwt_jwks unit/test_tcache \
               unit/test_vcache unit/test_mapcache unit/test_service_parts unit/test_entra_fetch unit/test_entra_cache unit/test_curlx \
               integration/test_pg_pool integration/test_pg_migrate \
               integration/test_claims unit/test_delayq unit/test_store_claims \
               integration/test_pg_watch integration/test_pg_replicas \
               unit/test_acs_breaker unit/test_store_tokens \
               integration/test_upstream_budget unit/test_store_budget integration/test_credcheck
TSAN_BIN := $(TSAN_SUITES:%=$(BUILD)/tests/%)
TSAN_OPTIONS ?= halt_on_error=1 exitcode=66 second_deadlock_stack=1
# make lint runs clang-tidy and cppcheck on every core (scripts/tidy.sh keeps the report in file
# order, as one serial run would print it).
LINT_JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# Every public header and every module-internal one must compile on its own, and have an include
# guard (it is included twice in a row, and the guard is looked for).
HDRS     := $(sort $(wildcard include/*/*.h src/*/*.h src/*.h))
HDR_OK   := $(HDRS:%.h=$(BUILD)/hdr/%.ok)

.PHONY: all deps test unit integration e2e run asan tsan fmt fmt-check lint fuzz bench clean help \
        check-src hdr-check check-hardening
# Keep intermediate objects: make would otherwise delete them after the summary line of a test run.
.SECONDARY:

# The public targets first make sure the Debian packages are there, then re-run make, so that
# the pkg-config flags above are read after the packages exist (on a fresh machine they don't).
ifeq ($(TV_DEPS_DONE),)
all run lint hdr-check check-hardening:
	@scripts/deps.sh build --quiet
	@$(MAKE) --no-print-directory TV_DEPS_DONE=1 $@
test unit integration e2e tsan-run:
	@scripts/deps.sh test --quiet
	@$(MAKE) --no-print-directory TV_DEPS_DONE=1 $@
bench:
	@scripts/deps.sh bench --quiet
	@$(MAKE) --no-print-directory TV_DEPS_DONE=1 $@
else
bench: $(BINS)
	@BUILD=$(BUILD) BENCH_OPT="$(OPT)" scripts/bench.sh
all: $(BINS)
test: $(BINS) $(TEST_BIN)
	@BUILD=$(BUILD) scripts/run-tests.sh all
unit: $(BINS) $(TEST_BIN)
	@BUILD=$(BUILD) scripts/run-tests.sh unit
integration: $(BINS) $(TEST_BIN)
	@BUILD=$(BUILD) scripts/run-tests.sh integration
e2e: $(BINS)
	@BUILD=$(BUILD) scripts/run-tests.sh e2e
# run.sh builds the binaries itself once it holds data/run.lock, quietly (the compiler's output goes
# to data/build.log, shown on failure): `+` hands it make's jobserver.
run:
	+@BUILD=$(BUILD) RUN_BUILD=1 MAKE="$(MAKE)" scripts/run.sh
tsan-run: $(BINS) $(TSAN_BIN)
	@BUILD=$(BUILD) TSAN_OPTIONS="$(TSAN_OPTIONS)" scripts/run-tests.sh bins $(TSAN_BIN)
hdr-check: $(HDR_OK)
	@echo "hdr-check: $(words $(HDR_OK)) headers compile on their own"
check-hardening: $(BINS)
	@scripts/check-hardening.sh $(BINS)
lint: $(BINS) check-src
	@scripts/service-graph.sh $(BUILD) >$(BUILD)/service-graph.txt || \
	    { cat $(BUILD)/service-graph.txt; exit 1; }; tail -n 1 $(BUILD)/service-graph.txt
	@scripts/tidy.sh $(LINT_JOBS) $(LIB_SRC) $(EMU_SRC) src/main.c src/emulator/main.c -- $(CFLAGS)
	@echo "clang-tidy: $(words $(LIB_SRC) $(EMU_SRC) src/main.c src/emulator/main.c) files, $(LINT_JOBS) at a time"
	cppcheck -j $(LINT_JOBS) --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --inline-suppr --suppress=missingIncludeSystem -Iinclude src
endif

help:
	@echo "make            build $(BINS)"
	@echo "make test       build and run every test (unit, integration, cli, e2e)"
	@echo "make run        start acs-emulator and tokenvend on loopback with a demo account"
	@echo "make asan       the suite under AddressSanitizer + UBSan (less the waiting-bound e2e suites named in scripts/run-tests.sh)"
	@echo "make tsan       the threaded suites under ThreadSanitizer (build-tsan/)"
	@echo "make hdr-check  every header compiles on its own"
	@echo "make check-src  the banned-call check (scripts/check-src.sh; also part of lint)"
	@echo "make check-hardening  release binaries carry RELRO, BIND_NOW, canaries, FORTIFY"
	@echo "make fmt|lint   clang-format the tree | clang-tidy and cppcheck"
	@echo "make fuzz       build and briefly run the libFuzzer harnesses (clang)"
	@echo "make bench      the docs/benchmarks.md scenarios with wrk; rewrites that file"
	@echo "make valgrind   tokenvend serve under valgrind memcheck, 10,000 mixed requests"
	@echo "make reliability  the long reliability runs; rewrites docs/reliability.md"
	@echo "make deps       install the Debian packages the build and tests need"

deps:
	@scripts/deps.sh test

# Objects are rebuilt when the warning list changes, so a new warning shows at once.
$(BUILD)/obj/%.o: %.c mk/warnings.txt
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/tests/%.o: tests/%.c mk/warnings.txt
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_CFLAGS) -c $< -o $@

$(GEN_SRC): scripts/embed-sql.sh $(MIGRATIONS)
	@mkdir -p $(dir $@)
	scripts/embed-sql.sh $(MIGRATIONS) >$@.tmp && mv $@.tmp $@

$(BUILD)/obj/gen/migrations.o: $(GEN_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(PG_GEN_SRC): scripts/embed-sql.sh $(PG_MIGRATIONS)
	@mkdir -p $(dir $@)
	scripts/embed-sql.sh --symbol store_pg_migrations $(PG_MIGRATIONS) >$@.tmp && mv $@.tmp $@

$(BUILD)/obj/gen/pg_migrations.o: $(PG_GEN_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(OPENAPI_TOOL_OBJ): CFLAGS += $(YAML_CFLAGS)
$(OPENAPI_TOOL): $(OPENAPI_TOOL_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(YAML_LDLIBS)

# Written whole or not at all, so a failed generation fails the build and the next one too.
$(OPENAPI_GEN_SRC): $(OPENAPI_TOOL) $(OPENAPI_YAML)
	@mkdir -p $(dir $@)
	$(OPENAPI_TOOL) c $(OPENAPI_YAML) >$@.tmp && mv $@.tmp $@ || { rm -f $@.tmp; exit 1; }

$(BUILD)/obj/gen/openapi.o: $(OPENAPI_GEN_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The generator's unit test links its parts, libyaml and cmocka, not libtokenvend.
$(BUILD)/obj/tests/unit/test_openapi_gen.o: CFLAGS += -Itools $(YAML_CFLAGS)
$(BUILD)/tests/unit/test_openapi_%: $(BUILD)/obj/tests/unit/test_openapi_%.o \
                                    $(OPENAPI_TOOL_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(YAML_LDLIBS) -lcmocka

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/tokenvend: $(BUILD)/obj/src/main.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(EMU_LIB): $(EMU_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/acs-emulator: $(BUILD)/obj/src/emulator/main.o $(EMU_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TLIB_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# The emulator's own unit tests (the shorter stem makes make prefer this rule to the one above).
$(BUILD)/tests/unit/test_emulator_%: $(BUILD)/obj/tests/unit/test_emulator_%.o $(TLIB_OBJ) \
                                     $(EMU_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

asan:
	@TV_E2E_PG=0 TV_E2E_SANITIZED=1 $(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g" \
	    SANITIZE=address,undefined test
tsan:
	@$(MAKE) --no-print-directory BUILD=build-tsan OPT="-O1 -g" SANITIZE=thread tsan-run

$(BUILD)/hdr/%.ok: %.h mk/warnings.txt
	@mkdir -p $(dir $@)
	@grep -qE '^#(ifndef|pragma once)' $< || { echo "hdr-check: $< has no include guard" >&2; exit 1; }
	@printf '#include "%s"\n#include "%s"\n' $< $< | \
	    $(CC) $(filter-out -MMD -MP,$(CFLAGS)) -I. -fsyntax-only -x c - || \
	    { echo "hdr-check: $< does not compile on its own" >&2; exit 1; }
	@touch $@

check-src:
	@scripts/check-src.sh

FMT_FILES = $(shell find src include tests tools -name '*.[ch]' -not -path '*/node_modules/*')
fmt:
	clang-format -i $(FMT_FILES)
fmt-check:
	clang-format --dry-run --Werror $(FMT_FILES)

fuzz:
	@BUILD=$(BUILD) scripts/fuzz.sh

# The reliability runs behind docs/reliability.md (tests/reliability/; long, outside make test,
# whose short versions are tests/reliability/reliability.test.mjs). `make valgrind`: memcheck
# over tokenvend serve and 10,000 mixed requests (installs valgrind on demand).
.PHONY: valgrind reliability
valgrind:
	@scripts/deps.sh valgrind --quiet
	@$(MAKE) --no-print-directory TV_DEPS_DONE=1 $(BINS)
	@mkdir -p $(BUILD)/reliability
	@TV_BUILD=$(BUILD) node tests/reliability/valgrind.mjs --out $(BUILD)/reliability/valgrind.md
reliability:
	@scripts/deps.sh valgrind --quiet
	@scripts/deps.sh fuzz --quiet
	@$(MAKE) --no-print-directory TV_DEPS_DONE=1 $(BINS)
	@$(MAKE) --no-print-directory TV_DEPS_DONE=1 BUILD=build-tsan OPT="-O1 -g" SANITIZE=thread \
	    build-tsan/bin/tokenvend build-tsan/bin/acs-emulator
	@BUILD=$(BUILD) TSAN_BUILD=build-tsan tests/reliability/generate.sh

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz

TEST_OBJ := $(UNIT_SRC:%.c=$(BUILD)/obj/%.o) $(INTEG_SRC:%.c=$(BUILD)/obj/%.o)
-include $(LIB_OBJ:.o=.d) $(EMU_OBJ:.o=.d) $(TLIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/obj/src/main.d \
         $(BUILD)/obj/src/emulator/main.d $(OPENAPI_TOOL_OBJ:.o=.d)
