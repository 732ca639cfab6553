#!/usr/bin/env bash
# The debug addon `npm test` runs and the registry spec ships. On linux x64 glibc it is linked by zig against
# glibc 2.17, as released binaries are, in its own target dir so `npm run build:debug` (native) is not rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] && getconf GNU_LIBC_VERSION >/dev/null 2>&1; then
  bin=$(bash scripts/zig-tools.sh)
  PATH="$bin:$PATH" exec npx napi build --platform -x --target x86_64-unknown-linux-gnu.2.17 --target-dir target/zig "$@"
fi
exec npx napi build --platform "$@"
