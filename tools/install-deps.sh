#!/usr/bin/env bash
# Installs every Debian package camperso needs to build, test, demo and
# benchmark. Idempotent: packages already present are skipped, and apt is not
# touched at all when nothing is missing. Run as root on Debian 12.
set -euo pipefail

PACKAGES=(
	build-essential pkg-config
	postgresql-15 postgresql-server-dev-15 postgresql-contrib
	librdkafka-dev kcat
	libssl-dev
	postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
	clang libclang-rt-14-dev
	postgresql-15-hll
	prometheus-postgres-exporter
	curl procps
)

missing=()
for pkg in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$pkg")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#PACKAGES[@]} packages present"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages (${missing[*]}) and not root; install them or rerun as root" >&2
	exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# The Debian postgresql-15 package creates and starts a "main" cluster; the
# project never uses it, so a fresh install is told not to create one.
if [ -d /etc/postgresql-common ] && [ ! -f /etc/postgresql-common/createcluster.d/camperso.conf ]; then
	mkdir -p /etc/postgresql-common/createcluster.d
	echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/camperso.conf
fi
apt-get install -y -q --no-install-recommends "${missing[@]}"
