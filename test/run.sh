#!/usr/bin/env bash
# test/run.sh — camperso's whole test suite, behind `make test`.
#
#  1. installs missing Debian packages (tools/install-deps.sh)
#  2. builds with -Werror and installs into a private copy of the PG15 tree
#     (tools/private-install.sh), so tests never touch /usr
#  3. starts a throwaway cluster as the postgres user on 127.0.0.1 with
#     shared_preload_libraries = 'camperso' (test/camperso.conf)
#  4. runs the pg_regress suite (sql/ + expected/), the pgTAP suite
#     (test/pgtap/*.sql through pg_prove) and every integration test
#     (test/integration/*.sh; exit 0 pass, 77 skip, other fail)
#  5. tears everything down, even on failure, and prints "N passed, N failed"
#
# A new test is a new file in one of those folders; nothing here changes.
# Environment: CI=true or CAMPERSO_QUICK=1 shortens the long integration
# loops; CAMPERSO_TESTS="name ..." runs only the named integration tests;
# CAMPERSO_SKIP_DEPS=1 skips the package check.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

if [ "${CI:-}" = "true" ]; then
	export CAMPERSO_QUICK=1
fi

if [ -z "${CAMPERSO_SKIP_DEPS:-}" ]; then
	bash tools/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }
fi

PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PRIVATE=$ROOT/.tmp_install

echo "== build (-Werror) and private install"
make -s clean >/dev/null 2>&1
if ! bash tools/private-install.sh COPT=-Werror; then
	echo "0 passed, 1 failed"
	exit 1
fi

export CAMPERSO_ROOT=$ROOT
export CAMPERSO_PGBIN=$PRIVATE/usr/lib/postgresql/15/bin
export CAMPERSO_TEST_WORK
CAMPERSO_TEST_WORK=$(mktemp -d /tmp/camperso-test.XXXXXX)
chmod 755 "$CAMPERSO_TEST_WORK"
LOGS=$ROOT/.test_logs
rm -rf "$LOGS"
mkdir -p "$LOGS"

# shellcheck source=test/lib.sh
source "$ROOT/test/lib.sh"
_LIB_OWNS_WORK=1

PASSED=0
FAILED=0
SKIPPED=0
FAILED_NAMES=()
FLAKY_NAMES=()

record() {
	case "$1" in
	pass) PASSED=$((PASSED + 1)) ;;
	skip) SKIPPED=$((SKIPPED + 1)) ;;
	*) FAILED=$((FAILED + 1)); FAILED_NAMES+=("$2") ;;
	esac
}

finish() {
	local extra=""
	[ $SKIPPED -gt 0 ] && extra=", $SKIPPED skipped"
	echo
	if [ ${#FAILED_NAMES[@]} -gt 0 ]; then
		echo "failed: ${FAILED_NAMES[*]}"
	fi
	if [ ${#FLAKY_NAMES[@]} -gt 0 ]; then
		echo "flaky (failed, then passed on retry): ${FLAKY_NAMES[*]}"
	fi
	echo "$PASSED passed, $FAILED failed$extra"
}

cluster_create main
cluster_start main
MAIN_PORT=$(cluster_port main)

# ---- pg_regress
if [ -z "${CAMPERSO_TESTS:-}" ]; then
	echo "== pg_regress (sql/)"
	rm -rf results regression.diffs regression.out
	make -s PG_CONFIG=$PG_CONFIG installcheck PGHOST=127.0.0.1 PGPORT="$MAIN_PORT" PGUSER=postgres \
		>"$LOGS/pg_regress.log" 2>&1
	grep -E '^(test| ) .*\.\.\. ' "$LOGS/pg_regress.log" || cat "$LOGS/pg_regress.log"
	ok=$(grep -cE '\.\.\. ok' "$LOGS/pg_regress.log")
	bad=$(grep -cE '\.\.\. FAILED|\.\.\. failed' "$LOGS/pg_regress.log")
	PASSED=$((PASSED + ok))
	FAILED=$((FAILED + bad))
	if [ "$bad" -gt 0 ] || [ "$ok" -eq 0 ]; then
		[ "$ok" -eq 0 ] && [ "$bad" -eq 0 ] && { FAILED=$((FAILED + 1)); cat "$LOGS/pg_regress.log"; }
		FAILED_NAMES+=("pg_regress")
		[ -f regression.diffs ] && cat regression.diffs
	fi
fi

# ---- pgTAP
shopt -s nullglob
TAP_FILES=(test/pgtap/*.sql)
if [ -z "${CAMPERSO_TESTS:-}" ] && [ ${#TAP_FILES[@]} -gt 0 ]; then
	echo "== pgTAP (test/pgtap/)"
	cluster_psql main -d postgres -c "CREATE DATABASE camperso_tap"
	cluster_psql main -d camperso_tap -c "CREATE EXTENSION pgtap"
	pg_prove -h 127.0.0.1 -p "$MAIN_PORT" -U postgres -d camperso_tap \
		"${TAP_FILES[@]}" >"$LOGS/pgtap.log" 2>&1
	cat "$LOGS/pgtap.log"
	for f in "${TAP_FILES[@]}"; do
		if grep -qE "^$f \.+ ok" "$LOGS/pgtap.log"; then
			record pass "$f"
		else
			record fail "$f"
		fi
	done
fi

# ---- integration
echo "== integration (test/integration/)"
for t in test/integration/*.sh; do
	name=$(basename "$t" .sh)
	if [ -n "${CAMPERSO_TESTS:-}" ] && [[ " $CAMPERSO_TESTS " != *" $name "* ]]; then
		continue
	fi
	start=$SECONDS
	timeout -k 10 900 bash "$t" >"$LOGS/$name.log" 2>&1
	rc=$?
	if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
		# One retry, reported: timing-sensitive tests can lose a race on a
		# loaded machine. A test that passes only on retry is listed as
		# flaky in the summary, with its first log kept, never hidden.
		mv "$LOGS/$name.log" "$LOGS/$name.first-try.log"
		echo "integration $name ... failed once (exit $rc); retrying; first log:"
		# the test's own FAIL line first: the tail is mostly the server log
		# that the cleanup prints after it
		grep -m 3 '^FAIL' "$LOGS/$name.first-try.log" | sed 's/^/    /'
		tail -15 "$LOGS/$name.first-try.log" | sed 's/^/    /'
		timeout -k 10 900 bash "$t" >"$LOGS/$name.log" 2>&1
		rc=$?
		[ $rc -eq 0 ] && FLAKY_NAMES+=("$name")
	fi
	took=$((SECONDS - start))
	case $rc in
	0) echo "integration $name ... ok (${took}s)"; record pass "$name" ;;
	77) echo "integration $name ... skipped: $(grep '^SKIP' "$LOGS/$name.log" | tail -1)"; record skip "$name" ;;
	*)
		echo "integration $name ... FAILED (exit $rc, ${took}s); log:"
		tail -60 "$LOGS/$name.log" | sed 's/^/    /'
		record fail "$name"
		;;
	esac
done

finish
# The EXIT trap from lib.sh stops the clusters and removes the scratch dir.
[ $FAILED -eq 0 ] && [ $PASSED -gt 0 ]
