# camperso — PGXS build.
#
# Sources are found by folder, so a stage adds a C or SQL file by dropping it
# into src/<stage>/; nothing here lists files by hand. The install script is
# the stage SQL files concatenated in pipeline order (core first, then the
# CAMPERSO stages), each folder's files in name order.
#
#   make            build the extension and the embedded Kafka tool
#   make install    install into the PostgreSQL named by PG_CONFIG
#   make test       the whole suite (installs packages, builds, private cluster)
#   make demo       the end-to-end pipeline demo
#   make bench      every benchmark under bench/
#   make fuzz       the libFuzzer targets, FUZZ_SECONDS (default 600) each

EXTENSION = camperso
EXTVERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" camperso.control)

# Pin PostgreSQL 15: Debian's /usr/bin/pg_config follows the newest server.
PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

STAGES = core capture validate model persist expose security observe
STAGE_SQL = $(foreach stage,$(STAGES),$(sort $(wildcard src/$(stage)/*.sql)))

MODULE_big = camperso
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c src/*/*.c)))

DATA_built = camperso--$(EXTVERSION).sql
DATA = $(sort $(wildcard upgrade/camperso--*--*.sql))

# pg_regress: "init" creates the extension, then every sql/*.sql in name order.
REGRESS_FILES = $(basename $(notdir $(sort $(wildcard sql/*.sql))))
REGRESS = init $(filter-out init,$(REGRESS_FILES))
REGRESS_OPTS = --temp-config=$(srcdir)/test/camperso.conf --inputdir=$(srcdir)

PKG_MODULES = rdkafka libcrypto
PG_CPPFLAGS = -I$(srcdir)/src $(shell pkg-config --cflags $(PKG_MODULES) 2>/dev/null) \
	-Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
	-Wno-sign-compare
SHLIB_LINK = $(shell pkg-config --libs $(PKG_MODULES) 2>/dev/null) -lpthread

KAFKA_TOOL = tools/camperso-kafka
GEN_TOOL = tools/camperso-gen
EXTRA_CLEAN = $(KAFKA_TOOL) $(GEN_TOOL) results regression.diffs regression.out

ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
else
all install installcheck:
	@echo "PostgreSQL 15 server headers not found: run 'bash tools/install-deps.sh' as root (make test does)" >&2
	@exit 1
endif

$(DATA_built): $(STAGE_SQL) camperso.control Makefile
	@{ printf '%s\n' '-- camperso $(EXTVERSION) install script, generated from src/*/*.sql by the Makefile.'; \
	   printf '%s\n' '\echo Use "CREATE EXTENSION camperso" to load this file. \quit'; \
	   for f in $(STAGE_SQL); do printf '\n-- ---- %s\n' "$$f"; cat "$$f"; done; } > $@

# The embedded Kafka: librdkafka's mock cluster behind a small CLI.
$(KAFKA_TOOL): tools/kafka_mock.c
	$(CC) -O2 -g -Wall -Wextra -o $@ $< $(shell pkg-config --cflags --libs rdkafka) -lpthread

# The event generator (tests, demo, benchmarks): plain C, no dependencies.
$(GEN_TOOL): tools/gen.c
	$(CC) -O2 -g -Wall -Wextra -o $@ $<

all: $(KAFKA_TOOL) $(GEN_TOOL)

.PHONY: test demo demo-stop bench deps fuzz
deps:
	bash tools/install-deps.sh

test:
	bash test/run.sh

demo:
	bash tools/demo.sh

demo-stop:
	bash tools/demo.sh stop

bench:
	bash bench/run.sh

fuzz:
	bash test/fuzz/run.sh fuzz
