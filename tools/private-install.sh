#!/usr/bin/env bash
# tools/private-install.sh [EXTRA_MAKE_ARGS...] — builds camperso and installs
# it into a private copy of the PostgreSQL 15 tree at .tmp_install/ (hard
# links to the system install, which PostgreSQL finds relative to its own
# binaries). Tests, the demo and the benchmarks run servers from there, so
# they never write to /usr and several checkouts can run side by side.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PRIVATE=$ROOT/.tmp_install

# One job more than cores: a clean build takes ~10 s on 2 cores instead of
# ~20 s one file at a time.
JOBS=$(($(nproc 2>/dev/null || echo 1) + 1))
if ! make -s -j"$JOBS" PG_CONFIG=$PG_CONFIG "$@" >"$ROOT/.build.log" 2>&1; then
	cat "$ROOT/.build.log" >&2
	exit 1
fi
rm -f "$ROOT/.build.log"

rm -rf "$PRIVATE"
mkdir -p "$PRIVATE/usr/lib/postgresql" "$PRIVATE/usr/share/postgresql"
cp -al /usr/lib/postgresql/15 "$PRIVATE/usr/lib/postgresql/"
cp -al /usr/share/postgresql/15 "$PRIVATE/usr/share/postgresql/"
# Never write through a hard link into the system tree.
rm -f "$PRIVATE"/usr/lib/postgresql/15/lib/camperso.so \
	"$PRIVATE"/usr/share/postgresql/15/extension/camperso*
rm -rf "$PRIVATE"/usr/lib/postgresql/15/lib/bitcode/camperso*
make -s PG_CONFIG=$PG_CONFIG DESTDIR="$PRIVATE" install >/dev/null
chmod -R a+rX "$PRIVATE"
echo "private install: $PRIVATE/usr/lib/postgresql/15/bin"
