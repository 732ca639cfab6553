#!/usr/bin/env bash
# The specs start real servers themselves; this makes sure their programs are installed (Debian packages, as
# root), so `npm test` works on a fresh machine.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# moto's S3 server comes from PyPI.
if ! command -v moto_server >/dev/null 2>&1; then
  echo "installing moto[server] for the S3 test server" >&2
  python3 -m pip install --quiet 'moto[server]'
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} for the test servers" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "the test suite needs: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
