#!/bin/sh
# Entrypoint of the worker image (docker/Dockerfile.worker).
#
#   worker-entrypoint worker     wait for the Prefect API, make sure the work pool exists,
#                                deploy the retrain deployment from /app/prefect.yaml, then
#                                run a process worker with a /health endpoint on :8080.
#   worker-entrypoint CMD...     run CMD as is (`ser train ...`, `prefect server start ...`).
#
# Settings (environment): PREFECT_API_URL (required for `worker`), SER_WORK_POOL (ser-pool),
# SER_DEPLOYMENT (ser-retrain), SER_API_WAIT_SECONDS (300), SER_RETRAIN_PARAMS (optional JSON
# object merged into the deployment's parameters from prefect.yaml, e.g.
# '{"data_folders": ["/app/data/audio"]}' so scheduled runs read the container's audio volume).
set -eu

if [ "$#" -gt 0 ] && [ "$1" != "worker" ]; then
    exec "$@"
fi

pool="${SER_WORK_POOL:-ser-pool}"
deployment="${SER_DEPLOYMENT:-ser-retrain}"
: "${PREFECT_API_URL:?PREFECT_API_URL must point at the Prefect server, e.g. http://prefect-server:4200/api}"

echo "waiting for the Prefect API at ${PREFECT_API_URL} ..."
python - <<'EOF'
import os
import sys
import time
import urllib.request

url = os.environ["PREFECT_API_URL"].rstrip("/") + "/health"
deadline = time.monotonic() + float(os.environ.get("SER_API_WAIT_SECONDS", "300"))
error: object = "no answer yet"
while True:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            if response.status == 200:
                break
    except OSError as exc:
        error = exc
    if time.monotonic() > deadline:
        sys.exit(f"the Prefect API at {url} did not answer: {error}")
    time.sleep(3)
EOF

# `prefect deploy` refuses (without a prompt) to target a work pool that does not exist.
if ! prefect work-pool inspect "$pool" >/dev/null 2>&1; then
    prefect work-pool create "$pool" --type process \
        || prefect work-pool inspect "$pool" >/dev/null  # created meanwhile by another worker
fi

# Idempotent: re-deploying updates the deployment (and its schedule) in place.  prefect.yaml
# has no pull step, so runs execute in the directory deployed from: /app.
cd /app
if [ -n "${SER_RETRAIN_PARAMS:-}" ]; then
    prefect --no-prompt deploy --name "$deployment" --params "$SER_RETRAIN_PARAMS"
else
    prefect --no-prompt deploy --name "$deployment"
fi

exec prefect worker start --pool "$pool" --type process --with-healthcheck
