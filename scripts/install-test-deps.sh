#!/bin/sh
# install-test-deps.sh: make sure the external programs pvectl's tests need are present.
#
# The DNS provider tests (providers/dns) start a real BIND 9 `named` on loopback and use `dig`
# for diagnostics. This script is idempotent: when both are already installed it does nothing.
# When one is missing and we run as root (CI on a fresh Debian/Ubuntu machine) it installs
# Debian's bind9 and dnsutils; otherwise it prints what to install and exits 1.
set -eu

missing=""
have() {
	command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]
}
have named || missing="$missing named"
have dig || missing="$missing dig"

if [ -z "$missing" ]; then
	exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "install-test-deps: missing:$missing; installing bind9 dnsutils" >&2
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y bind9 dnsutils
	for p in named dig; do
		if ! have "$p"; then
			echo "install-test-deps: $p still missing after installing bind9 dnsutils" >&2
			exit 1
		fi
	done
	exit 0
fi

echo "install-test-deps: missing:$missing" >&2
echo "install-test-deps: install the BIND 9 server and dig, e.g. as root on Debian/Ubuntu:" >&2
echo "    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y bind9 dnsutils" >&2
exit 1
