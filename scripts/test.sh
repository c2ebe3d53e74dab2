#!/usr/bin/env bash
# Install what the tests need (Python packages from requirements-dev.txt, Debian's chromium for the
# browser test) and run the whole test suite. Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
if ! command -v chromium >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
python3 -m pytest "$@"
