# sparkgw — one entry point: make, make run, make test, make test-asan.
# Objects go under $(BUILD); `make test-asan` builds a separate tree.

BUILD    ?= build
CC       ?= cc
VERSION  := 0.1.0
GIT_COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

SPARKGW_PORT ?= 8080
SPARKGW_DATA ?= ./var

WARN := -std=c11 -Wall -Wextra -Wpedantic -Werror -Wshadow \
	-Wstrict-prototypes -Wmissing-prototypes -Wold-style-definition \
	-Wpointer-arith -Wcast-qual -Wwrite-strings -Wformat=2 -Wvla -Wundef \
	-fno-common
OPT      ?= -O2 -g
CPPFLAGS += -I. $(shell pkg-config --cflags libpq) -D_GNU_SOURCE -DGW_VERSION='"$(VERSION)"' \
	-DGW_GIT_COMMIT='"$(GIT_COMMIT)"'
CFLAGS   += $(WARN) $(OPT)
LIBS     := -lmicrohttpd -lgnutls -ljansson -lcurl -lsqlite3 -lpq -lyaml -lcrypto -lpthread -lm
CHECK_LIBS = $(shell pkg-config --libs check)

ifeq ($(SANITIZE),1)
CC       := clang
OPT      := -O1 -g -fno-omit-frame-pointer
CFLAGS   += -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
else
CPPFLAGS += -D_FORTIFY_SOURCE=2
endif
# gcc's guess at snprintf truncation fires on bounded, intended truncation.
ifeq ($(findstring clang,$(CC)),)
CFLAGS   += -Wno-format-truncation
endif

COMMON_SRC  := $(wildcard common/*.c)
STORE_SRC   := $(wildcard store/*.c)
GATEWAY_SRC := $(wildcard gateway/*/*.c)
MODULE_SRC  := $(wildcard k8sclient/*.c router/*.c pool/*.c dispatch/*.c cli/*.c)
LIB_SRC     := $(COMMON_SRC) $(STORE_SRC) $(MODULE_SRC) $(GATEWAY_SRC)
TEST_SRC    := $(wildcard tests/*.c)
MIGRATIONS  := $(sort $(wildcard store/schema/*.sql))
PG_MIGRATIONS := $(sort $(wildcard store/schema/pg/*.sql))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/migrations.o $(BUILD)/obj/gen/dashboard.o
KUBESIM_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard contrib/kubesim/*.c) $(COMMON_SRC))
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)

.PHONY: all deps run test check test-postgres test-asan test-valgrind fuzz bench clean FORCE
all: $(BUILD)/sparkgw $(BUILD)/kubesim

deps:
	@sh contrib/install-deps.sh

# `make V=1` shows the full commands.
Q := $(if $(V),,@)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# The commit the build names (GW_GIT_COMMIT), rewritten only when it
# changes, so that the objects naming it are rebuilt then and only then.
$(BUILD)/gen/commit: FORCE
	@mkdir -p $(dir $@)
	@echo '$(GIT_COMMIT)' | cmp -s - $@ || echo '$(GIT_COMMIT)' > $@
COMMIT_USERS := gateway/api/dashboard.c gateway/api/metrics.c gateway/api/routes.c gateway/main.c \
	cli/commands.c tests/check_cli.c
$(COMMIT_USERS:%.c=$(BUILD)/obj/%.o): $(BUILD)/gen/commit
FORCE:

# Migrations are embedded as C strings, in file-name order: SQLite's as
# store_migrations, PostgreSQL's as store_pg_migrations (each in
# parentheses: clang takes a short one's lines for a missing comma).
embed_sql = echo 'extern const char *const $(1)[];'; \
	   echo 'extern const size_t $(1)_count;'; \
	   echo 'const char *const $(1)[] = {'; \
	   for f in $(2); do \
	     echo '('; sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $$f; echo '),'; \
	   done; \
	   echo '};'; \
	   echo 'const size_t $(1)_count = sizeof($(1)) / sizeof($(1)[0]);'
$(BUILD)/gen/migrations.c: $(MIGRATIONS) $(PG_MIGRATIONS) Makefile
	@mkdir -p $(dir $@)
	@{ echo '#include <stddef.h>'; \
	   $(call embed_sql,store_migrations,$(MIGRATIONS)); \
	   $(call embed_sql,store_pg_migrations,$(PG_MIGRATIONS)); \
	 } > $@

$(BUILD)/obj/gen/migrations.o: $(BUILD)/gen/migrations.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# The dashboard's files are embedded as bytes: the binary serves them, no
# build step or CDN at run time.
DASHBOARD := contrib/dashboard/index.html contrib/dashboard/app.js contrib/dashboard/style.css
$(BUILD)/gen/dashboard.c: $(DASHBOARD) Makefile
	@mkdir -p $(dir $@)
	@{ echo '#include "gateway/api/assets.h"'; \
	   n=0; for f in $(DASHBOARD); do \
	     echo "static const unsigned char asset$$n[] = {"; \
	     od -An -v -tx1 $$f | sed -e 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	     echo '};'; n=$$((n + 1)); \
	   done; \
	   echo 'const struct gateway_asset gateway_assets[] = {'; \
	   n=0; for f in $(DASHBOARD); do \
	     echo "{\"/ui/$$(basename $$f)\", asset$$n, sizeof(asset$$n)},"; n=$$((n + 1)); \
	   done; \
	   echo '};'; \
	   echo 'const size_t gateway_asset_count = sizeof(gateway_assets) / sizeof(gateway_assets[0]);'; \
	 } > $@

$(BUILD)/obj/gen/dashboard.o: $(BUILD)/gen/dashboard.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/sparkgw: $(BUILD)/obj/gateway/main.o $(LIB_OBJ)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/kubesim: $(KUBESIM_OBJ)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/check_sparkgw: $(TEST_OBJ) $(LIB_OBJ)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(CHECK_LIBS)

# The baselines `make bench` measures the gateway against.
$(BUILD)/bench-http-baseline: contrib/bench/http_baseline.c
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LIBS)

$(BUILD)/bench-store-baseline: contrib/bench/store_baseline.c $(BUILD)/obj/gen/migrations.o
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $^ $(LIBS)

# Loopback benchmarks against baselines measured in the same run; writes
# bench/results.json and prints a Markdown table (about 8 minutes).
bench: deps
	@$(MAKE) --no-print-directory all $(BUILD)/bench-http-baseline $(BUILD)/bench-store-baseline
	/usr/bin/python3 contrib/bench/run.py --build $(BUILD) --out bench/results.json

run: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) SPARKGW_PORT=$(SPARKGW_PORT) SPARKGW_DATA=$(SPARKGW_DATA) \
		exec sh contrib/run-demo.sh

test: deps
	@$(MAKE) --no-print-directory check

# The suite itself; expects the packages to be installed.
check: $(BUILD)/sparkgw $(BUILD)/kubesim $(BUILD)/check_sparkgw
	SPARKGW_BIN=$(BUILD)/sparkgw KUBESIM_BIN=$(BUILD)/kubesim SPARKGW_SANITIZED=$(SANITIZE) $(BUILD)/check_sparkgw

# The same suite with every gateway it starts on PostgreSQL.
test-postgres: deps
	@SPARKGW_TEST_STORE=postgres $(MAKE) --no-print-directory check

test-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan SANITIZE=1 check

# The end-to-end suites with every gateway under valgrind: an error or a
# definite leak fails the gateway's exit status, and so the test.
VALGRIND_SUITES ?= api auth dispatch
test-valgrind: deps $(BUILD)/sparkgw $(BUILD)/kubesim $(BUILD)/check_sparkgw
	@for s in $(VALGRIND_SUITES); do \
		SPARKGW_VALGRIND=1 CK_TIMEOUT_MULTIPLIER=4 CK_RUN_SUITE=$$s SPARKGW_BIN=$(BUILD)/sparkgw \
			KUBESIM_BIN=$(BUILD)/kubesim $(BUILD)/check_sparkgw || exit 1; \
	done

# libFuzzer targets, each run for FUZZ_SECONDS from its seed corpus; new
# inputs go to build-fuzz/corpus, crashes to build-fuzz/.
FUZZ_TARGETS := submission selector quantity yaml policy kubeconfig compat http sql jsonpath
FUZZ_SECONDS ?= 30
FUZZ_CC      := clang $(CPPFLAGS) $(WARN) -O1 -g -fsanitize=fuzzer,address,undefined
FUZZ_SRC     := $(COMMON_SRC) gateway/api/submission.c gateway/compat/translate.c $(wildcard router/*.c)

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_SRC)
	@mkdir -p build-fuzz
	$(FUZZ_CC) -o $@ $< $(FUZZ_SRC) $(LIBS)

build-fuzz/fuzz_kubeconfig: tests/fuzz/fuzz_kubeconfig.c $(COMMON_SRC) k8sclient/kubeconfig.c
	@mkdir -p build-fuzz
	$(FUZZ_CC) -o $@ $^ $(LIBS)

build-fuzz/fuzz_jsonpath: tests/fuzz/fuzz_jsonpath.c $(COMMON_SRC) cli/jsonpath.c
	@mkdir -p build-fuzz
	$(FUZZ_CC) -o $@ $^ $(LIBS)

# The whole gateway but main, in process.
build-fuzz/fuzz_http: tests/fuzz/fuzz_http.c $(LIB_SRC) $(BUILD)/gen/migrations.c $(BUILD)/gen/dashboard.c
	@mkdir -p build-fuzz
	$(FUZZ_CC) -o $@ $^ $(LIBS)

# Each target for FUZZ_SECONDS from its seeds; a crash stops the run with
# the fuzzer's report and leaves the input under build-fuzz/.
fuzz: deps $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p build-fuzz/corpus/$$t; \
		if ! (cd build-fuzz && ./fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			corpus/$$t ../tests/fuzz/corpus/$$t > fuzz_$$t.log 2>&1); then \
			tail -40 build-fuzz/fuzz_$$t.log; echo "fuzz_$$t: FAILED"; exit 1; \
		fi; \
		echo "fuzz_$$t: $$(grep -o 'number_of_executed_units: [0-9]*' build-fuzz/fuzz_$$t.log |\
			grep -o '[0-9]*') executions in $(FUZZ_SECONDS) s, no crash"; \
	done

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(KUBESIM_OBJ:.o=.d) $(BUILD)/obj/gateway/main.d
