#!/usr/bin/env bash
# Refresh requirements.lock: resolve pyproject.toml in a new virtualenv, then record every
# installed distribution at its exact version with the hashes of its published files.
#
#   bash scripts/refresh_lock.sh        # then run `make test` and commit requirements.lock
#
# torch is left out of the lock: `make` installs its CPU build (torch==2.13.0, pinned in
# pyproject.toml) first, because PyPI's default torch wheel pulls several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "resolving pyproject.toml in a new virtualenv ($work)..."
"$PYTHON" -m venv "$work/venv"
pip="$work/venv/bin/pip"
"$pip" install --quiet pip==26.3
"$pip" install --quiet torch==2.13.0
"$pip" install --quiet -e '.[dev]'
"$pip" install --quiet uv==0.13.9
"$pip" freeze --all --exclude-editable | grep -v -E '^(pip|torch|uv)==' >"$work/pins.txt"

echo "hashing $(wc -l <"$work/pins.txt") pinned distributions..."
SSL_CERT_FILE="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" \
  "$work/venv/bin/uv" pip compile "$work/pins.txt" --no-deps --generate-hashes \
  --python "$work/venv/bin/python" --no-header --quiet -o "$work/requirements.lock"
{
  echo "# Every distribution the project installs, at the version CI tested, with hashes."
  echo "# Installed by make (pip install --require-hashes --no-deps); torch comes first, separately."
  echo "# Refresh with: bash scripts/refresh_lock.sh"
  sed 's|# via -r .*pins.txt|# via pyproject.toml|' "$work/requirements.lock"
} >requirements.lock
echo "wrote requirements.lock ($(grep -c '==' requirements.lock) distributions)"
