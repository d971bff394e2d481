#!/usr/bin/env bash
# Start or stop a Docker Engine for docker/test.sh on a machine without one
# running (CI, the project's build machines): Debian's docker.io, with no
# bridge and no iptables rules (the containers use the host's network and
# bind 127.0.0.1 only).
#
#   docker/engine.sh start    # install docker.io, debootstrap, docker-compose if missing; start dockerd
#   docker/engine.sh stop     # stop the dockerd that `start` started (and only that one)
#
# An engine that already answers is used as it is and never stopped. Needs
# root. dockerd logs to $DOCKERD_LOG (default /tmp/hfed-dockerd.log).
set -euo pipefail

STATE=/tmp/hfed-dockerd.pid
LOG=${DOCKERD_LOG:-/tmp/hfed-dockerd.log}
WAIT_SECONDS=60

install_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    # Compose v2 (`docker compose`) is not packaged for bookworm; Debian's
    # docker-compose (1.29, Python) reads the same compose.yaml.
    docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || missing+=(docker-compose)
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start() {
    if timeout 10 docker info >/dev/null 2>&1; then
        echo "a Docker engine is running already; using it"
        return 0
    fi
    install_packages
    # setsid: the engine outlives this script and gets no terminal signals.
    setsid dockerd --bridge=none --iptables=false --ip-masq=false >"$LOG" 2>&1 </dev/null &
    echo $! >"$STATE"
    local deadline=$((SECONDS + WAIT_SECONDS))
    until timeout 5 docker info >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$(cat "$STATE")" 2>/dev/null; then
            echo "Error: dockerd did not come up within ${WAIT_SECONDS}s; its log:" >&2
            tail -20 "$LOG" >&2
            return 1
        fi
        sleep 1
    done
    echo "dockerd $(docker version --format '{{.Server.Version}}') running (pid $(cat "$STATE"), log $LOG)"
}

stop() {
    [ -f "$STATE" ] || {
        echo "no dockerd started by docker/engine.sh"
        return 0
    }
    local pid
    pid=$(cat "$STATE")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        # dockerd stops its containers first (10 s each at most).
        for _ in $(seq 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$STATE"
    echo "dockerd (pid $pid) stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
