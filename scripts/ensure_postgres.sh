#!/usr/bin/env bash
# The MLflow-on-PostgreSQL test (tests/test_scale_out.py) needs PostgreSQL's server binaries.
# Install Debian's `postgresql` package when no initdb is found under /usr/lib/postgresql/*/bin.
# Idempotent and quiet: prints one line, or a clear error on stderr and exits non-zero.
set -euo pipefail

latest_initdb() {
  local candidate found=""
  for candidate in /usr/lib/postgresql/*/bin/initdb; do
    [ -x "$candidate" ] && found="$found$candidate"$'\n'
  done
  printf '%s' "$found" | sort -V | tail -n 1
}

initdb_bin="$(latest_initdb)"
if [ -n "$initdb_bin" ]; then
  echo "PostgreSQL found: $("$initdb_bin" --version)"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != "0" ]; then
  echo "error: PostgreSQL not found (no initdb under /usr/lib/postgresql/*/bin)." >&2
  echo "  The MLflow-on-PostgreSQL test needs it; install it as root:" >&2
  echo "  sudo apt-get install postgresql" >&2
  exit 1
fi

echo "PostgreSQL not found: installing Debian's postgresql package"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq >/dev/null || ! apt-get install -y -qq postgresql >/dev/null; then
  echo "error: 'apt-get install postgresql' failed; see apt-get's messages above." >&2
  exit 1
fi
initdb_bin="$(latest_initdb)"
if [ -z "$initdb_bin" ]; then
  echo "error: postgresql was installed but no initdb is under /usr/lib/postgresql/*/bin." >&2
  exit 1
fi
echo "PostgreSQL installed: $("$initdb_bin" --version)"
