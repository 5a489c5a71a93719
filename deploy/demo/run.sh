#!/bin/sh
# The demo: the autoscaler daemon on this machine's Docker engine scaling the
# bundled workload up under load and back down after it, in about six
# minutes on a 2-core machine. CPU and memory come from Docker's stats,
# queue depth, p95 and error rate from each replica's own /metrics (no
# Prometheus needed). Everything is built here; no registry is used.
#
#   deploy/demo/run.sh            build, start the workload, run the daemon and the load
#   LOAD=0 deploy/demo/run.sh     no load: print the command instead
#   KEEP=1 deploy/demo/run.sh     leave the workload running on exit
#
# The policy is deploy/demo/policy.toml: the example policy with DEMO-ONLY
# windows (30 s of high CPU scales up, 1 min of low load scales down) and
# the workload's DEMO limits (half a CPU a replica: deploy/demo/compose.yml).
# Each decision line shows the signal values behind it. Ctrl-C stops the
# daemon (after the pass in flight) and removes the demo workload.
set -eu
cd "$(dirname "$0")/../.."
root=$(pwd)
demo="$root/target/demo"
project=vedfolnir-demo   # the demo policy's [target] project
policy=deploy/demo/policy.toml
compose="docker-compose -p $project -f deploy/demo/compose.yml"
bin=target/release/vedfolnir-autoscaler

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

echo "demo: starting the workload with 1 replica"
export WORKLOAD_IMAGE=vedfolnir-workload:demo CONTROL_DIR="$demo/control"
$compose up -d --scale vedfolnir=1 >/dev/null 2>&1 || $compose up -d --scale vedfolnir=1
cleanup() {
    # Background jobs of a script ignore Ctrl-C: stop them by their pids.
    for pid in ${bg:-} $(cat "$demo/load.pid" 2>/dev/null); do
        kill "$pid" 2>/dev/null || true
    done
    rm -f "$demo/load.pid"
    [ "${KEEP:-0}" = 1 ] || $compose down --timeout 2 >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Each line with the wall-clock time, to see how fast the daemon reacts.
stamp() { while IFS= read -r line; do printf '%s %s\n' "$(date +%H:%M:%S)" "$line"; done; }

i=0
until $bin health --policy $policy >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 60 ] || { echo "demo: the workload did not get healthy in 60 s" >&2; $bin health --policy $policy; exit 1; }
    sleep 1
done

# A trickle of requests (one every 2 s) so the p95 and the error rate have
# something to measure from the start: an idle service has no p95, it is
# missing, not 0.
$bin load --policy $policy --path '/sleep?ms=20' --rate 0.5 --duration 30m --quiet >/dev/null 2>&1 &
bg=$!

# The load that scales it: 30 requests a second, each burning 25 ms of CPU,
# is 0.75 CPU, one and a half times one replica's limit. The policy's
# 30-second CPU window fills, it scales up (and once more, since two
# replicas still run at 75%), and holds at three; a minute after the load
# ends, it scales back down, one replica a minute.
load_cmd="$bin load --policy $policy --path /burn?ms=25 --rate 30 --duration 3m"
if [ "${LOAD:-1}" = 1 ]; then
    (
        sleep 30
        echo "demo: LOAD STARTS: $load_cmd"
        $load_cmd --quiet &
        echo $! > "$demo/load.pid"
        wait || true
        echo "demo: LOAD ENDED: the scale-down follows once CPU has been low for 1 minute"
    ) 2>&1 | stamp &
    bg="$bg $!"
fi

token="$demo/api-token"
[ -s "$token" ] || head -c 24 /dev/urandom | base64 > "$token"
cat <<INFO
demo: page     http://127.0.0.1:9464/   (the status page: replicas over time, signals, decisions)
demo: status   curl -s http://127.0.0.1:9464/api/v1/status
demo: scale    curl -s -H "Authorization: Bearer \$(cat $token)" -d '{"replicas": 3}' http://127.0.0.1:9464/api/v1/services/vedfolnir/scale
demo: load     $load_cmd
demo: limits   $bin limits --policy $policy
demo: state and audit in $demo/state; Ctrl-C to stop
INFO
$bin run \
    --policies $policy \
    --interval 5s \
    --state-dir "$demo/state" \
    --cache-dir "$demo/cache" \
    --api-token-file "$token" 2>&1 | stamp
