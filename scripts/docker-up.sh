#!/usr/bin/env bash
# Starts a Docker engine for the Docker sandbox backend and builds its image offline.
# Idempotent: an engine that already answers is reused. Exits non-zero when no engine can start,
# so `make docker-up` can say loudly that the Docker tests will be skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_ROOT="${HARNESS_DOCKER_DATA_ROOT:-/var/lib/harness-docker}"
EXEC_ROOT="${HARNESS_DOCKER_EXEC_ROOT:-/run/harness-docker}"
LOG="${HARNESS_DOCKER_LOG:-/tmp/harness-dockerd.log}"
HARNESS="${HARNESS_BIN:-.venv/bin/harness}"

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if ! engine_answers; then
    if ! command -v dockerd >/dev/null 2>&1; then
        if [ "$(id -u)" -ne 0 ]; then echo "docker-up: dockerd is missing and we are not root" >&2; exit 1; fi
        echo "docker-up: installing docker.io" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >&2
        apt-get install -y -q --no-install-recommends docker.io >&2
    fi
    runtimes=()
    # gVisor refuses to share the host's network namespace, so its runtime gets --network=none baked in.
    if command -v runsc >/dev/null 2>&1; then
        wrapper=/usr/local/sbin/runsc-nonet
        printf '#!/bin/sh\nexec /usr/bin/runsc --network=none "$@"\n' > "$wrapper" && chmod 755 "$wrapper"
        runtimes=(--add-runtime "runsc=$wrapper")
    fi
    mkdir -p "$DATA_ROOT" "$EXEC_ROOT"
    echo "docker-up: starting dockerd (data root $DATA_ROOT, log $LOG)" >&2
    nohup dockerd --data-root "$DATA_ROOT" --exec-root "$EXEC_ROOT" --pidfile "$EXEC_ROOT/dockerd.pid" \
        "${runtimes[@]}" >"$LOG" 2>&1 &
    for _ in $(seq 1 60); do
        engine_answers && break
        sleep 0.5
    done
    if ! engine_answers; then
        echo "docker-up: dockerd did not answer within 30 s; last log lines:" >&2
        tail -n 20 "$LOG" >&2 || true
        exit 1
    fi
fi
echo "docker-up: engine $(docker version --format '{{.Server.Version}}') answers" >&2
"$HARNESS" sandbox build-image
