#!/usr/bin/env bash
# Refresh docker/requirements-mlflow.lock, the hashed lock of the MLflow server image
# (docker/Dockerfile.mlflow): mlflow and psycopg2-binary at the versions of the project's
# requirements.lock, boto3 for the S3 artifact store, and their dependencies, every shared
# distribution held at requirements.lock's version (tests/test_docker_compose.py checks that).
#
#   bash docker/refresh-mlflow-lock.sh      # after `make lock` changed requirements.lock
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

pin() { grep -E "^$1==" requirements.lock | sed 's/ .*//'; }
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet uv==0.13.9
# requirements.lock without its hashes: constraints that hold every shared distribution.
grep -E '^[A-Za-z0-9_.-]+==' requirements.lock | sed 's/ .*//' >"$work/constraints.txt"
printf '%s\n' "$(pin mlflow)" "$(pin psycopg2-binary)" "boto3" >"$work/requirements.in"

SSL_CERT_FILE="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" \
  "$work/venv/bin/uv" pip compile "$work/requirements.in" -c "$work/constraints.txt" \
  --generate-hashes --python-version 3.11 --no-header --quiet -o "$work/lock.txt"
{
  echo "# The MLflow server image's distributions (docker/Dockerfile.mlflow), with hashes."
  echo "# Versions shared with requirements.lock are the same; refresh with:"
  echo "#   bash docker/refresh-mlflow-lock.sh"
  sed -e 's|# via -r .*requirements.in|# via docker/refresh-mlflow-lock.sh|' \
      -e 's|-c .*constraints.txt|requirements.lock|' "$work/lock.txt"
} >docker/requirements-mlflow.lock
echo "wrote docker/requirements-mlflow.lock ($(grep -c '==' docker/requirements-mlflow.lock) distributions)"
