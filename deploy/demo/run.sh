#!/bin/sh
# The demo: the autoscaler daemon on this machine's Docker engine, with the
# example policy (policies/vedfolnir.toml): CPU and memory from Docker's
# stats, queue depth, p95 and error rate from each replica's own /metrics
# (no Prometheus needed), scaling the bundled demo workload. Everything is
# built here; no registry is used.
#
#   deploy/demo/run.sh            build, start the workload, run the daemon
#   KEEP=1 deploy/demo/run.sh     leave the workload running on exit
#
# It prints one line per decision. Ctrl-C stops the daemon (after the pass
# in flight) and removes the demo workload.
set -eu
cd "$(dirname "$0")/../.."
root=$(pwd)
demo="$root/target/demo"
project=vedfolnir   # the example policy's [target] project
compose="docker-compose -p $project -f tests/workload/compose.yml"

command -v docker >/dev/null || { echo "demo: docker is not installed" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "demo: the Docker engine is not reachable (is it running? may this user use it?)" >&2; exit 1; }
command -v docker-compose >/dev/null || { echo "demo: docker-compose is not installed (Debian: apt-get install docker-compose)" >&2; exit 1; }

# The workload is a static (musl) binary: a toolchain installed before
# without that target gains it here, as the build adds wasm32-wasip2.
musl=x86_64-unknown-linux-musl
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$musl"; then
    echo "demo: adding the Rust target $musl"
    rustup target add "$musl"
fi

echo "demo: building the workload (a static binary) and its FROM scratch image"
cargo build --release --locked --quiet -p vedfolnir-test-workload \
    --target x86_64-unknown-linux-musl --target-dir target/workload
mkdir -p "$demo/image" "$demo/control" "$demo/state"
cp target/workload/x86_64-unknown-linux-musl/release/workload "$demo/image/workload"
cp tests/workload/Dockerfile "$demo/image/Dockerfile"
out=$(docker build --quiet --tag vedfolnir-workload:demo "$demo/image" 2>&1) || { echo "$out" >&2; exit 1; }

echo "demo: building the autoscaler"
cargo build --release --locked --quiet -p vedfolnir-autoscaler

echo "demo: starting the workload with 1 replica (the policy's minimum is 2)"
export WORKLOAD_IMAGE=vedfolnir-workload:demo CONTROL_DIR="$demo/control"
$compose up -d --scale vedfolnir=1 >/dev/null 2>&1 || $compose up -d --scale vedfolnir=1
cleanup() {
    [ -z "${traffic_pid:-}" ] || kill "$traffic_pid" 2>/dev/null || true
    [ "${KEEP:-0}" = 1 ] || $compose down --timeout 2 >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A request a second, one in twenty an error, so latency and errors have
# something to measure (an idle service has no p95; it is missing, not 0).
traffic() {
    n=0
    while :; do
        for id in $($compose ps -q vedfolnir 2>/dev/null); do
            p=$(docker port "$id" 8080 2>/dev/null | head -n 1 | sed 's/.*://')
            [ -n "$p" ] || continue
            if [ $((n % 20)) = 0 ]; then path=/error; else path=/; fi
            curl -s -o /dev/null -m 2 "http://127.0.0.1:$p$path" || true
        done
        n=$((n + 1))
        sleep 1
    done
}
if command -v curl >/dev/null; then
    traffic &
    traffic_pid=$!
else
    echo "demo: curl is not installed: no background requests, so p95 and error rate stay missing"
fi

token="$demo/api-token"
[ -s "$token" ] || head -c 24 /dev/urandom | base64 > "$token"
port=$(docker port "$($compose ps -q vedfolnir | head -n 1)" 8080 | head -n 1 | sed 's/.*://')
cat <<INFO
demo: status   curl -s http://127.0.0.1:9464/api/v1/status
demo: scale    curl -s -H "Authorization: Bearer \$(cat $token)" -d '{"replicas": 4}' http://127.0.0.1:9464/api/v1/services/vedfolnir/scale
demo: load     curl -s -m 1 'http://127.0.0.1:$port/burn?ms=400000&threads=2'   (CPU above 70% of the limit for 5 minutes scales up)
demo: state and audit in $demo/state; Ctrl-C to stop
INFO
exec_daemon() {
    target/release/vedfolnir-autoscaler run \
        --policies policies/vedfolnir.toml \
        --state-dir "$demo/state" \
        --cache-dir "$demo/cache" \
        --api-token-file "$token"
}
exec_daemon
