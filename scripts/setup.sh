#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: a virtual environment with the pinned packages in
# .venv, the project installed into it, and (for the browser tests) Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
want="${1:-dev}"   # dev: everything the tests need; app: only what the app needs

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
reqs=requirements.txt
[ "$want" = dev ] && reqs=requirements-dev.txt
stamp=".venv/.installed-$(cat "$reqs" requirements.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "==> installing Python packages from $reqs (first run takes a few minutes)"
    .venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
    .venv/bin/python -m pip install --quiet -r "$reqs" 2>&1 | grep -v "^WARNING: Location" || true
    .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 | grep -v "^WARNING: Location" || true
    .venv/bin/python -c "import gar_app, torch, transformers, gradio" || { echo "package install failed" >&2; exit 1; }
    touch "$stamp"
fi

if [ "$want" = dev ] && ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing Debian's chromium for the browser tests"
        (apt-get install -y -qq chromium >/dev/null 2>&1 \
            || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1)) \
            || echo "warning: could not install chromium; the browser tests will be skipped" >&2
    else
        echo "note: chromium is not installed; the browser tests will be skipped" >&2
    fi
fi
