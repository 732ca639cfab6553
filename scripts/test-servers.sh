#!/usr/bin/env bash
# The specs start real servers themselves; this makes sure their programs are installed (Debian packages, as
# root), so `npm test` works on a fresh machine.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
# __test__/sentinel.spec.mjs runs three sentinels in front of a primary and a replica.
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# __test__/chromium.spec.mjs drives Debian's Chromium through puppeteer-core (which never downloads a browser).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# __test__/prometheus.spec.mjs scrapes the metrics with Debian's Prometheus; the package brings promtool.
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# moto's S3 server comes from PyPI: into the active Python if it lets us, else into a venv the specs know
# (Debian's own python3 refuses pip installs, PEP 668).
venv=node_modules/.cache/moto-venv
if ! command -v moto_server >/dev/null 2>&1 && [ ! -x "$venv/bin/moto_server" ]; then
  echo "installing moto[server] for the S3 test server" >&2
  if ! python3 -m pip install --quiet 'moto[server]' 2>/dev/null || ! command -v moto_server >/dev/null 2>&1; then
    python3 -m venv "$venv" 2>/dev/null || missing+=(python3-venv)
  fi
fi
# __test__/kubernetes.spec.mjs validates examples/kubernetes/ offline with kubernetes-validate (PyPI), whose
# package bundles the Kubernetes schemas; pinned, so the schemas do not change under the suite.
kv_venv=node_modules/.cache/kubernetes-validate-venv
install_kubernetes_validate() {
  if [ ! -x "$kv_venv/bin/kubernetes-validate" ]; then
    echo "installing kubernetes-validate for the manifest checks" >&2
    python3 -m venv "$kv_venv" && "$kv_venv/bin/python" -m pip install --quiet 'kubernetes-validate==1.37.0'
  fi
}
if [ ${#missing[@]} -eq 0 ]; then
  if [ -x "$venv/bin/python" ] && [ ! -x "$venv/bin/moto_server" ]; then
    "$venv/bin/python" -m pip install --quiet 'moto[server]'
  fi
  install_kubernetes_validate
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} for the test servers" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ " ${missing[*]} " == *" python3-venv "* ]]; then
    python3 -m venv "$venv" && "$venv/bin/python" -m pip install --quiet 'moto[server]'
  fi
  install_kubernetes_validate
else
  echo "the test suite needs: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
