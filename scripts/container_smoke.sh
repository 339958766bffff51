#!/usr/bin/env bash
# Container smoke test, run by hand (not in CI): build the images, start the stack, train and
# promote a model inside it, get a prediction back from the model-server container.
#
#   sudo bash scripts/container_smoke.sh            # as root: podman runs rootful here
#
# Steps (each one timed): install podman if missing (Debian packages) and configure it;
# podman-compose; a Debian bookworm base image made with debootstrap (skipped when it
# exists); the four images (PostgreSQL, MLflow server, worker, model server), one after
# another; `podman-compose -f docker/compose.yaml -f docker/compose.smoke.yaml up -d`; wait
# until PostgreSQL, MLflow, the Prefect server and the worker are healthy; `ser retrain` on
# the synthetic demo corpus inside the worker (MLflow server + Prefect server); wait until
# the model server has loaded models:/ser-emotion@champion; POST a real clip to it from
# this machine and print the answer; move @champion to another model of that run (as any
# MLflow client would) and then back with `ser rollback`, and check that the running server
# answers from each new version within 90 s with no failed request and no restart; tear the
# stack down (volumes too), also on failure.
# The last line is `prediction ok: <emotion>` on success.
#
# Settings (environment):
#   SER_SMOKE_HOME        cache and logs (/var/tmp/ser-container-smoke)
#   SER_SMOKE_BASE_IMAGE  base of every image (localhost/ser-base:bookworm, made here);
#                         python:3.11-slim-bookworm where a registry is reachable
#   SER_SMOKE_MIRROR      Debian mirror for debootstrap (default: from /etc/apt/sources*)
#   SER_SMOKE_TORCH_WHEELS  folder with the torch-2.13.0 CPU wheel (/opt/wheels if it has
#                         one; else the images download it from download.pytorch.org)
#   SER_SMOKE_CLIP        the clip to POST (default: a RAVDESS clip under ../shared/data)
#   SER_SMOKE_KEEP=1      leave the stack running at the end (no teardown)
# Host ports (docker/compose.smoke.yaml): 127.0.0.1:15001 model server, :15000 MLflow,
# :14200 Prefect.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SMOKE_HOME="${SER_SMOKE_HOME:-/var/tmp/ser-container-smoke}"
BASE_IMAGE="${SER_SMOKE_BASE_IMAGE:-localhost/ser-base:bookworm}"
PROJECT="ser-automl-smoke"
PODMAN_COMPOSE_VERSION="1.6.0"
HOST_CA="/etc/ssl/certs/ca-certificates.crt"
SERVE_PORT=15001  # the model server's host port in docker/compose.smoke.yaml
LOGS="$SMOKE_HOME/logs/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$LOGS"
cd "$ROOT"

# ---------------------------------------------------------------------------------------------
# output: one line per step, with its wall time

RUN_START=$EPOCHREALTIME
STEP_NAME=""
STEP_START=""

begin() {
    STEP_NAME="$1"
    STEP_START=$EPOCHREALTIME
    NOTE=""
}

step() {  # step NAME COMMAND...: run COMMAND in this shell, then print NAME, time and $NOTE
    begin "$1"
    shift
    "$@"
    done_step "$NOTE"
}

done_step() {  # done_step [NOTE]
    local seconds
    seconds=$(awk -v a="$STEP_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    printf '%-46s %7s s  %s\n' "$STEP_NAME" "$seconds" "${1:-}"
    STEP_NAME=""
}

fail() {
    echo "FAILED${STEP_NAME:+ at step \"$STEP_NAME\"}: $*" >&2
    exit 1
}

show_log() {  # the end of a log file, on failure
    echo "---- last lines of $1" >&2
    tail -n "${2:-40}" "$1" >&2 || true
}

human_size() {
    awk -v b="$1" 'BEGIN { split("B KB MB GB", u); i = 1; while (b >= 1000 && i < 4) { b /= 1000; i++ }
                          printf (i == 1 ? "%d %s" : "%.2f %s"), b, u[i] }'
}

# ---------------------------------------------------------------------------------------------
# podman, podman-compose, the base image

ensure_podman() {
    local installed="present"
    # catatonit (the containers' init) and iptables (netavark's firewall) are needed too: without
    # them no container starts, and compose up used to wait for the first one forever.
    if ! command -v podman >/dev/null || ! command -v runc >/dev/null \
        || ! command -v catatonit >/dev/null || ! command -v iptables >/dev/null; then
        [ "$(id -u)" = 0 ] || fail "podman, runc, catatonit or iptables is missing; run as root"
        {
            apt-get update
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
                podman runc debootstrap netavark aardvark-dns uidmap catatonit iptables
        } >"$LOGS/apt.log" 2>&1 || { show_log "$LOGS/apt.log"; fail "apt-get install podman"; }
        installed="installed"
    fi
    # This machine's cgroups: crun fails ("cgroups in hybrid mode not supported"), so runc
    # and the cgroupfs manager; no default ulimits (the container may not raise them).
    local conf=/etc/containers/containers.conf
    if [ ! -e "$conf" ]; then
        mkdir -p /etc/containers
        cat >"$conf" <<'EOF'
# Written by ser-automl's scripts/container_smoke.sh: podman as root on this machine.
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
EOF
        installed="$installed, wrote $conf"
    elif ! grep -q 'runtime *= *"runc"' "$conf"; then
        echo "note: $conf does not select runc; containers may fail to start with crun" >&2
    fi
    PODMAN_VERSION="$(podman version --format '{{.Client.Version}}')"
    NOTE="podman $PODMAN_VERSION ($installed)"
}

ensure_podman_compose() {
    # Debian bookworm's podman-compose (1.0.3) appends override lists to the base ones (a
    # `command:` in an override becomes one long command) and has no !override, so the
    # override file needs a newer one: pinned, in its own virtualenv.
    PODMAN_COMPOSE="$SMOKE_HOME/podman-compose/bin/podman-compose"
    if ! "$PODMAN_COMPOSE" version 2>/dev/null | grep -q "$PODMAN_COMPOSE_VERSION"; then
        local python=python3
        [ -x /usr/bin/python3 ] && python=/usr/bin/python3
        {
            rm -rf "$SMOKE_HOME/podman-compose"
            "$python" -m venv "$SMOKE_HOME/podman-compose"
            "$SMOKE_HOME/podman-compose/bin/pip" install "podman-compose==$PODMAN_COMPOSE_VERSION"
        } >"$LOGS/podman-compose.log" 2>&1 \
            || { show_log "$LOGS/podman-compose.log"; fail "pip install podman-compose"; }
    fi
    NOTE="podman-compose $PODMAN_COMPOSE_VERSION ($PODMAN_COMPOSE)"
}

debian_mirror() {
    if [ -n "${SER_SMOKE_MIRROR:-}" ]; then
        echo "$SER_SMOKE_MIRROR"
        return
    fi
    local uri
    uri="$(grep -h -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{ print $2 }' | grep -v -- '-security' | head -n 1 || true)"
    [ -n "$uri" ] || uri="$(grep -h -E '^deb +(\[[^]]*\] +)?http' /etc/apt/sources.list 2>/dev/null \
        | sed -E 's/^deb +(\[[^]]*\] +)?//' | awk '{ print $1 }' | head -n 1 || true)"
    echo "${uri:-http://deb.debian.org/debian}"
}

ensure_base_image() {
    if podman image exists "$BASE_IMAGE"; then
        NOTE="cached"
        return
    fi
    case "$BASE_IMAGE" in
        localhost/*) ;;
        *) podman pull "$BASE_IMAGE" >"$LOGS/pull.log" 2>&1 \
               || { show_log "$LOGS/pull.log"; fail "podman pull $BASE_IMAGE"; }
           NOTE="pulled"
           return ;;
    esac
    command -v debootstrap >/dev/null || {
        apt-get install -y debootstrap >"$LOGS/apt-debootstrap.log" 2>&1 \
            || fail "apt-get install debootstrap"; }
    # What python:3.11-slim-bookworm offers the Dockerfiles: Python 3.11 as `python`, venv,
    # CA certificates, tzdata; apt sources with bookworm-updates and -security.
    local rootfs="$SMOKE_HOME/rootfs" mirror
    mirror="$(debian_mirror)"
    rm -rf "$rootfs"
    debootstrap --variant=minbase \
        --include=python3,python3-venv,python-is-python3,ca-certificates,netbase,tzdata \
        bookworm "$rootfs" "$mirror" >"$LOGS/debootstrap.log" 2>&1 \
        || { show_log "$LOGS/debootstrap.log"; fail "debootstrap from $mirror"; }
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    rm -f "$rootfs/etc/apt/sources.list"
    # Like Debian's slim images: no documentation from later apt installs, no caches.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    echo 'APT::Install-Recommends "false";' >"$rootfs/etc/apt/apt.conf.d/90no-recommends"
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
        "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias \
        -exec rm -rf {} +
    tar -C "$rootfs" -c . | podman import \
        --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' - "$BASE_IMAGE" \
        >"$LOGS/import.log" 2>&1 || { show_log "$LOGS/import.log"; fail "podman import"; }
    rm -rf "$rootfs"
    NOTE="debootstrap from $mirror, imported"
}

# ---------------------------------------------------------------------------------------------
# images

image_size() {
    human_size "$(podman image inspect --format '{{.Size}}' "$1")"
}

build_image() {  # build_image NAME DOCKERFILE
    local name="$1" dockerfile="$2" log="$LOGS/build-$1.log"
    local args=(build --format docker --network host --layers
        -f "$dockerfile" -t "ser-automl/$name:latest" --build-arg "BASE_IMAGE=$BASE_IMAGE")
    if [ -f "$dockerfile.dockerignore" ]; then
        args+=(--ignorefile "$dockerfile.dockerignore")
    fi
    if [ -r "$HOST_CA" ] && grep -q "^ARG PIP_CERT" "$dockerfile"; then
        # This machine's HTTPS goes through its own CA: pip gets the bundle for the build only.
        args+=(-v "$HOST_CA:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt)
    fi
    if grep -q "torch-wheels" "$dockerfile" && [ -n "$TORCH_WHEELS" ]; then
        args+=(--build-context "torch-wheels=$TORCH_WHEELS")
    fi
    podman "${args[@]}" . >"$log" 2>&1 || { show_log "$log"; fail "podman build $dockerfile"; }
    local cached
    cached="$(grep -c -- '--> Using cache' "$log" || true)"
    NOTE="$(image_size "ser-automl/$name:latest")  ($cached layers from cache; log: $log)"
}

# ---------------------------------------------------------------------------------------------
# the stack

compose() {
    "$PODMAN_COMPOSE" -p "$PROJECT" \
        -f docker/compose.yaml -f docker/compose.smoke.yaml "$@"
}

container_of() {  # the container of a compose service
    podman ps -a --filter "label=io.podman.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | head -n 1
}

wait_healthy() {  # wait_healthy SERVICE TIMEOUT_S
    # podman 4.3 runs health checks from systemd timers, which this machine does not have:
    # run the image's HEALTHCHECK here until it passes (that also sets the health status).
    local service="$1" deadline=$((SECONDS + $2)) name state
    name="$(container_of "$service")"
    [ -n "$name" ] || fail "no container for service $service"
    until podman healthcheck run "$name" >/dev/null 2>&1; do
        state="$(podman inspect --format '{{.State.Status}}' "$name" 2>/dev/null || echo gone)"
        if [ "$state" = "exited" ] || [ "$state" = "gone" ] || [ $SECONDS -ge $deadline ]; then
            podman logs --tail 40 "$name" >&2 2>&1 || true
            fail "$service did not become healthy (state: $state)"
        fi
        sleep 3
    done
    NOTE="healthy  ($name)"
}

teardown() {
    [ -n "${PODMAN_COMPOSE:-}" ] || return 0
    if [ "${SER_SMOKE_KEEP:-0}" = 1 ]; then
        echo "SER_SMOKE_KEEP=1: the stack is left running (stop: $PODMAN_COMPOSE -p $PROJECT" \
            "-f docker/compose.yaml -f docker/compose.smoke.yaml down -v)"
        return 0
    fi
    begin "teardown (down -v)"
    compose down -v --timeout 20 >"$LOGS/down.log" 2>&1 || show_log "$LOGS/down.log"
    done_step
}

on_exit() {
    local status=$?
    if [ "$status" != 0 ] && [ -n "${PODMAN_COMPOSE:-}" ]; then
        compose ps >"$LOGS/ps-at-failure.log" 2>&1 || true
        for service in postgres mlflow prefect-server prefect-worker model-server; do
            local name
            name="$(container_of "$service" 2>/dev/null || true)"
            [ -n "$name" ] && podman logs "$name" >"$LOGS/$service.log" 2>&1 || true
        done
        echo "container logs: $LOGS" >&2
    fi
    teardown
    exit "$status"
}

pick_clip() {
    if [ -n "${SER_SMOKE_CLIP:-}" ]; then
        echo "$SER_SMOKE_CLIP"
        return
    fi
    local shared
    for shared in "$ROOT/../shared/data" /work/shared/data; do
        # RAVDESS actor 01, emotion 05 (angry), strong intensity.
        if [ -f "$shared/ravdess/Actor_01/03-01-05-02-01-01-01.flac" ]; then
            echo "$shared/ravdess/Actor_01/03-01-05-02-01-01-01.flac"
            return
        fi
        find "$shared" -type f \( -name '*.wav' -o -name '*.flac' \) 2>/dev/null | sort | head -n 1 \
            | grep . && return
    done
    fail "no clip found under ../shared/data; set SER_SMOKE_CLIP"
}

predict() {  # predict CLIP: POST it to the model server, print the answer, echo the emotion
    python3 - "$1" "http://127.0.0.1:$SERVE_PORT/invocations" <<'EOF'
import base64, json, sys, urllib.request

clip, url = sys.argv[1], sys.argv[2]
audio = base64.b64encode(open(clip, "rb").read()).decode()
body = json.dumps({"dataframe_split": {"columns": ["audio"], "data": [[audio]]}}).encode()
request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=120) as response:
    answer = json.load(response)["predictions"][0]
print(json.dumps(answer, indent=None, default=str), file=sys.stderr)
probabilities = answer["probabilities"]
assert abs(sum(probabilities.values()) - 1) < 1e-3, probabilities
assert answer["emotion"] in probabilities, answer
print(answer["emotion"], answer["model_version"])
EOF
}

# Move @champion from inside the worker as any MLflow client (the UI, a script) would: a
# model of another family of the champion's training run becomes a new version and champion.
PROMOTE_ANOTHER='
import mlflow
from mlflow import MlflowClient

client = MlflowClient()
champion = client.get_model_version_by_alias("ser-emotion", "champion")
experiment = client.get_run(champion.run_id).info.experiment_id
other = next(m for m in client.search_logged_models(experiment_ids=[experiment])
             if m.model_id not in champion.source)
version = mlflow.register_model(f"models:/{other.model_id}", "ser-emotion").version
client.set_registered_model_alias("ser-emotion", "champion", version)
run = client.get_run(other.source_run_id).info.run_name.split(" ")[0]
print(f"the {run} model of the same training is v{version}, @champion")
'

follow() {  # follow WHAT COMMAND...: COMMAND (run in the worker) moves @champion; POST the
    # clip every second until the answers name the new version (at most 90 s), counting
    # failed requests; the model server must not have restarted.
    local what="$1" server before after target answer version failed=0 sent=0 started
    shift
    server="$(container_of model-server)"
    before="$(podman inspect --format '{{.State.StartedAt}} {{.RestartCount}}' "$server")"
    podman exec "$WORKER" "$@" >"$LOGS/$what.log" 2>&1 \
        || { show_log "$LOGS/$what.log"; fail "$what in $WORKER"; }
    target="$(podman exec "$WORKER" python -c 'from mlflow import MlflowClient
print(MlflowClient().get_model_version_by_alias("ser-emotion", "champion").version)')"
    started=$SECONDS
    while :; do
        sent=$((sent + 1))
        if answer="$(predict "$CLIP" 2>>"$LOGS/$what-answers.json")"; then
            version="${answer##* }"
            [ "$version" = "$target" ] && break
        else
            failed=$((failed + 1))
        fi
        [ $((SECONDS - started)) -lt 90 ] || fail "$what: still no answer from v$target after 90 s"
        sleep 1
    done
    after="$(podman inspect --format '{{.State.StartedAt}} {{.RestartCount}}' "$server")"
    [ "$before" = "$after" ] || fail "$what: the model server restarted ($before -> $after)"
    [ "$failed" = 0 ] || fail "$what: $failed of $sent requests failed while switching"
    NOTE="@champion -> v$target: answered by it after $((SECONDS - started)) s, $sent requests, 0 failed, no restart"
}

# ---------------------------------------------------------------------------------------------

echo "container smoke test of $ROOT  (logs: $LOGS)"
[ "$(id -u)" = 0 ] || fail "run as root (podman here works rootful)"

step "podman" ensure_podman
step "podman-compose" ensure_podman_compose
step "base image $BASE_IMAGE" ensure_base_image
echo "base image size: $(image_size "$BASE_IMAGE")"

TORCH_WHEELS="${SER_SMOKE_TORCH_WHEELS:-}"
if [ -z "$TORCH_WHEELS" ] && ls /opt/wheels/torch-2.13.0*.whl >/dev/null 2>&1; then
    TORCH_WHEELS=/opt/wheels
fi

step "build postgres-local" build_image postgres-local docker/smoke/Dockerfile.postgres
step "build mlflow" build_image mlflow docker/Dockerfile.mlflow
step "build worker" build_image worker docker/Dockerfile.worker
step "build serve" build_image serve docker/Dockerfile.serve

trap on_exit EXIT
begin "compose up -d"
compose down -v --timeout 5 >"$LOGS/down-before.log" 2>&1 || true  # leftovers of a killed run
# bounded: a container that cannot start must not keep podman-compose waiting forever
timeout 600 "$PODMAN_COMPOSE" -p "$PROJECT" -f docker/compose.yaml -f docker/compose.smoke.yaml \
    up -d --no-build >"$LOGS/up.log" 2>&1 || { show_log "$LOGS/up.log"; fail "compose up (at most 600 s)"; }
done_step "$(compose ps --format '{{.Names}}' 2>/dev/null | tr '\n' ' ')"

step "wait: postgres healthy" wait_healthy postgres 180
step "wait: mlflow healthy" wait_healthy mlflow 300
step "wait: prefect-server healthy" wait_healthy prefect-server 300
step "wait: prefect-worker healthy" wait_healthy prefect-worker 300

WORKER="$(container_of prefect-worker)"
begin "retrain on the demo corpus (in the worker)"
podman exec "$WORKER" ser data demo data/demo >"$LOGS/retrain.log" 2>&1 \
    && podman exec "$WORKER" ser retrain --config experiments/demo.yaml >>"$LOGS/retrain.log" 2>&1 \
    || { show_log "$LOGS/retrain.log" 60; fail "ser retrain in $WORKER"; }
done_step "promotion: $(grep -v '^Closing connection' "$LOGS/retrain.log" | tail -n 1 | cut -c1-80)"
grep -E '^│' "$LOGS/retrain.log" | sed 's/^/    /' || true  # the leaderboard rows

step "wait: model-server serves @champion" wait_healthy model-server 600

CLIP="$(pick_clip)"
begin "POST a clip to the model server"
ANSWER="$(predict "$CLIP" 2>"$LOGS/prediction.json")" \
    || { cat "$LOGS/prediction.json" >&2; fail "POST $CLIP"; }
EMOTION="${ANSWER% *}"
done_step "$(basename "$CLIP") -> $EMOTION (v${ANSWER##* })"
echo "answer: $(cat "$LOGS/prediction.json")"

# The model server follows @champion without a restart: a second promotion, then a rollback.
step "second promotion, followed by the server" follow promote python -c "$PROMOTE_ANOTHER"
grep -v '^Closing connection' "$LOGS/promote.log" | tail -n 1 | sed 's/^/    /'
step "ser rollback, followed by the server" follow rollback \
    ser rollback --model ser-emotion --to "${ANSWER##* }" --reason "container smoke test"

echo "image sizes:"
for name in postgres-local mlflow worker serve; do
    printf '  %-32s %s\n' "ser-automl/$name:latest" "$(image_size "ser-automl/$name:latest")"
done
printf '  %-32s %s\n' "$BASE_IMAGE" "$(image_size "$BASE_IMAGE")"
layers() { podman image inspect --format '{{range .RootFS.Layers}}{{println .}}{{end}}' "$1" | sort; }
echo "  (serve shares $(comm -12 <(layers ser-automl/worker:latest) <(layers ser-automl/serve:latest) \
    | grep -c .) of its $(layers ser-automl/serve:latest | grep -c .) layers with worker: stored once)"

trap - EXIT
teardown
total=$(awk -v a="$RUN_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
echo "total: ${total} s"
echo "prediction ok: $EMOTION"
