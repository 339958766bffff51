#!/usr/bin/env bash
# The web-page test (tests/test_web_app.py) drives Debian's Chromium through chromedriver.
# Install Debian's `chromium` and `chromium-driver` when either is missing.
# Idempotent and quiet: prints one line, or a clear error on stderr and exits non-zero.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "Chromium found: $(chromium --version 2>/dev/null | head -n 1)"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != "0" ]; then
  echo "error: chromium or chromedriver not found; the web-page test needs both." >&2
  echo "  Install them as root: sudo apt-get install chromium chromium-driver" >&2
  exit 1
fi

echo "Chromium not found: installing Debian's chromium and chromium-driver packages"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq >/dev/null || ! apt-get install -y -qq chromium chromium-driver >/dev/null; then
  echo "error: apt-get could not install chromium and chromium-driver" >&2
  exit 1
fi
echo "Chromium installed: $(chromium --version 2>/dev/null | head -n 1)"
