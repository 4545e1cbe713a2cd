#!/usr/bin/env bash
# System packages the test suite drives for real, installed when missing (Debian, as root):
# PostgreSQL server binaries (tests start a throwaway server), headless Chromium (the
# browser test), and ss/pgrep (the workers test). Without root it only says what is
# missing, and the tests that need it skip (outside CI) or fail.
set -euo pipefail

need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v chromium >/dev/null || need+=(chromium)
# The workers test reads socket owners with ss and finds worker processes with pgrep.
command -v ss >/dev/null || need+=(iproute2)
command -v pgrep >/dev/null || need+=(procps)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "make test: missing Debian packages: ${need[*]} (sudo apt-get install ${need[*]})" >&2
  exit 0
fi
echo "make test: installing Debian packages: ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
