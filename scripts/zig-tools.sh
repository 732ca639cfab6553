#!/usr/bin/env bash
# Zig and cargo-zigbuild (both from PyPI) in a venv of the project's, so the addon can be linked against
# glibc 2.17 (see docs/release.md). Prints the venv's bin folder for the caller's PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
# Same zig as the release workflow's; cargo-zigbuild finds it as `python -m ziglang`.
zig=ziglang==0.14.1
zigbuild=cargo-zigbuild==0.24.1
venv=node_modules/.cache/zig-venv
if [ ! -x "$venv/bin/cargo-zigbuild" ] || ! "$venv/bin/python" -m ziglang version >/dev/null 2>&1; then
  echo "installing $zig and $zigbuild for the glibc 2.17 build" >&2
  python3 -m venv "$venv" >&2 || {
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
      python3 -m venv --clear "$venv" >&2
    else
      echo "the glibc 2.17 build needs python3-venv (sudo apt-get install python3-venv)" >&2
      exit 1
    fi
  }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$zig" "$zigbuild" >&2
fi
cd "$venv/bin" && pwd
