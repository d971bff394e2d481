#!/usr/bin/env bash
# The Docker deployment, end to end, on a running Docker Engine (docker/engine.sh
# start brings one up):
#
#   1. the local base image from Debian packages (docker/build-base.sh; reused
#      when it exists);
#   2. the node image and the PostgreSQL image on that base;
#   3. `up`: PostgreSQL, the formation by the operator commands, three hotlines
#      and the secretariat, every service healthy;
#   4. one report submitted at hotline-dk for NL, filed at hotline-nl;
#   5. `down` (the volumes stay) and `up` again: the case is still there, once;
#   6. `down -v`: containers and volumes gone (the images stay, as build cache).
#
# Every wait is bounded; the timings are printed at the end. Run from anywhere:
#   docker/test.sh            (KEEP=1 leaves the network running for a look)
# Ports: HFNET_*_PORT as in docker/compose.yaml; the compose project is
# hfed-dockertest, so its containers and volumes are apart from any other.
set -euo pipefail
cd "$(dirname "$0")"

PROJECT=hfed-dockertest
BASE_IMAGE=${HFNET_BASE_IMAGE:-hfed-base:bookworm}
export HFNET_BASE_IMAGE=$BASE_IMAGE
export HFNET_IMAGE=${HFNET_IMAGE:-hotline-federation:dev}
export HFNET_PG_IMAGE=${HFNET_PG_IMAGE:-hfed-postgres:15}
# A fresh password for this run's database; never written to a file.
HFNET_PG_PASSWORD=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
export HFNET_PG_PASSWORD
SERVICES=(postgres secretariat hotline-dk hotline-nl hotline-de)
START=$SECONDS
TIMINGS=()

if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null; then
    COMPOSE=(docker-compose)
else
    echo "Error: neither \`docker compose\` nor docker-compose is installed" >&2
    exit 1
fi
compose() { timeout 300 "${COMPOSE[@]}" -p "$PROJECT" -f compose.yaml "$@"; }

# step NAME COMMAND...: run COMMAND and note how long it took.
step() {
    local name=$1 began=$SECONDS
    shift
    echo "== $name"
    "$@"
    TIMINGS+=("$(printf '%-28s %4ds' "$name" $((SECONDS - began)))")
    echo "   ($((SECONDS - began)) s)"
}

cleanup() {
    local status=$?
    if [ "$status" -ne 0 ]; then
        echo "== FAILED (exit $status); the services' last log lines:"
        compose ps || true
        compose logs --no-color --tail 30 2>&1 | tail -n 150 || true
    fi
    rm -f build-ca/machine.crt
    if [ "${KEEP:-0}" = 1 ] && [ "$status" -eq 0 ]; then
        echo "KEEP=1: the network is still up; stop it with (any password will do for that):"
        echo "  HFNET_PG_PASSWORD=x ${COMPOSE[*]} -p $PROJECT -f docker/compose.yaml down -v"
    else
        compose down -v --remove-orphans >/dev/null 2>&1 || true
    fi
    exit "$status"
}
trap cleanup EXIT

check_ports_free() {
    local port
    for port in "${HFNET_PG_PORT:-27432}" "${HFNET_SECRETARIAT_PORT:-27100}" "${HFNET_DK_PORT:-27101}" \
        "${HFNET_NL_PORT:-27102}" "${HFNET_DE_PORT:-27103}" "${HFNET_SECRETARIAT_METRICS_PORT:-27190}" \
        "${HFNET_DK_METRICS_PORT:-27191}" "${HFNET_NL_METRICS_PORT:-27192}" "${HFNET_DE_METRICS_PORT:-27193}"; do
        if ss -Htln "sport = :$port" | grep -q .; then
            echo "Error: port $port is in use; choose other HFNET_*_PORT values" >&2
            return 1
        fi
    done
}

# The CA bundle this machine's pip trusts goes into the build stage (docker/build-ca/README.md).
pip_ca() {
    local bundle=${PIP_CERT:-$(pip config get global.cert 2>/dev/null || true)}
    if [ -n "$bundle" ] && [ -f "$bundle" ]; then
        cp "$bundle" build-ca/machine.crt
        echo "build stage trusts $bundle (the machine's pip CA bundle)"
    fi
}

# build TAG ARGS...: docker build on the base; its whole log only if it fails.
build() {
    local tag=$1 log
    shift
    log=$(mktemp)
    if ! timeout 900 docker build --network host --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$tag" "$@" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        rm -f "$log"
        echo "Error: docker build of $tag failed" >&2
        return 1
    fi
    grep -E '^Successfully tagged' "$log" || true
    rm -f "$log"
}

image_size() { docker image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}'; }

build_images() {
    pip_ca
    build "$HFNET_IMAGE" -f Dockerfile ..
    build "$HFNET_PG_IMAGE" postgres
    echo "node image $(image_size "$HFNET_IMAGE"), PostgreSQL image $(image_size "$HFNET_PG_IMAGE")"
    # The final stage has no compiler, no pip and no build-time CA file, and runs as hfed.
    docker run --rm --network none "$HFNET_IMAGE" sh -c \
        '! command -v gcc cc pip pip3 >/dev/null && [ ! -e /etc/pip-ca.pem ] && [ "$(id -u)" = 10001 ]'
    echo "node image: no compiler, no pip, no build CA; runs as uid 10001"
}

# container SERVICE: the id of the project's container for SERVICE (docker
# itself, by compose's labels: much faster than asking docker-compose).
container() {
    docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$1" | head -n 1
}

# wait_healthy SECONDS: every long-running service reports healthy in time.
wait_healthy() {
    local deadline=$((SECONDS + $1)) service state pending
    while :; do
        pending=()
        for service in "${SERVICES[@]}"; do
            state=$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' \
                "$(container "$service")" 2>/dev/null || echo missing)
            [ "$state" = healthy ] || pending+=("$service:$state")
        done
        [ ${#pending[@]} -eq 0 ] && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "Error: not healthy within $1 s: ${pending[*]}" >&2
            return 1
        fi
        sleep 1
    done
    [ "$(docker inspect --format '{{.State.ExitCode}}' "$(container init)")" = 0 ]
    echo "healthy: ${SERVICES[*]} (init exited 0)"
}

up() {
    local output
    if ! output=$(compose up -d --no-build 2>&1); then
        tr '\r' '\n' <<<"$output" >&2
        return 1
    fi
    tr '\r' '\n' <<<"$output" | grep -E 'done|Started|Created' | sort -u || true
    wait_healthy 180
}

hfed_at() {
    local node=$1
    shift
    timeout 60 docker exec "$(container "$node")" hfed "$@"
}

# cases_with URL: how many of hotline-nl's cases carry URL.
cases_with() { hfed_at hotline-nl case list --format csv | grep -c -F ",$1" || true; }

report_end_to_end() {
    local submitted deadline=$((SECONDS + 60))
    URL="https://example.com/docker-test/$(date +%s%N)"
    submitted=$(hfed_at hotline-dk report submit --url "$URL" --country NL)
    echo "$submitted"
    grep -q "to hotline-nl" <<<"$submitted"
    until [ "$(cases_with "$URL")" = 1 ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "Error: the report was not filed at hotline-nl within 60 s" >&2
            return 1
        fi
        sleep 1
    done
    echo "filed at hotline-nl: $URL"
}

project_volumes() { docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT" | wc -l; }

down_keeping_volumes() {
    compose down >/dev/null 2>&1
    [ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ]
    [ "$(project_volumes)" = 6 ] || {
        echo "Error: expected 6 volumes after down, found $(project_volumes)" >&2
        return 1
    }
    echo "containers gone, 6 volumes kept"
}

data_intact() {
    local case_id shown
    [ "$(cases_with "$URL")" = 1 ] || {
        echo "Error: after down and up, hotline-nl does not hold the case exactly once" >&2
        return 1
    }
    case_id=$(hfed_at hotline-nl case list --format csv | grep -F ",$URL" | cut -d, -f1)
    shown=$(hfed_at hotline-nl case show "$case_id")
    head -n 3 <<<"$shown"
    echo "the case is still there, once"
}

down_removing_volumes() {
    compose down -v >/dev/null 2>&1
    [ "$(project_volumes)" = 0 ]
    echo "containers and volumes removed"
}

echo "Docker $(docker version --format '{{.Server.Version}}'), compose: $("${COMPOSE[@]}" version 2>/dev/null | head -n 1)"
compose down -v --remove-orphans >/dev/null 2>&1 || true
check_ports_free
step "base image" timeout 900 ./build-base.sh "$BASE_IMAGE"
step "node + PostgreSQL images" build_images
step "compose up (first)" up
step "report end to end" report_end_to_end
step "compose down (volumes kept)" down_keeping_volumes
step "compose up (again)" up
step "data intact" data_intact
[ "${KEEP:-0}" = 1 ] || step "compose down -v" down_removing_volumes
echo "== timings"
printf '  %s\n' "${TIMINGS[@]}"
printf '  %-28s %4ds\n' "whole test" $((SECONDS - START))
echo "  (load average now: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores)"
echo "docker test passed"
