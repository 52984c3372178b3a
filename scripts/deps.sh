#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages ParaFlow needs to build and test.
set -eu
PACKAGES="build-essential autoconf automake pkg-config libmicrohttpd-dev
libcurl4-openssl-dev libssl-dev libjansson-dev uuid-dev libcmocka-dev
netcat-openbsd curl procps clang libclang-rt-14-dev python3 iproute2
util-linux"
missing=
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
# shellcheck disable=SC2086
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $missing
