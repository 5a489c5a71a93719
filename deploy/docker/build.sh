#!/bin/sh
# Build the daemon's FROM scratch image (vedfolnir-autoscaler:latest) from a
# static build of this checkout. No registry is used.
set -eu
cd "$(dirname "$0")/../.."
ctx=target/docker-image
# A static musl build; the TLS library (ring, for https webhooks) has C and
# assembly parts, which need a musl C compiler (Debian: musl-tools).
if ! command -v x86_64-linux-musl-gcc >/dev/null; then
    command -v musl-gcc >/dev/null || {
        echo "build.sh: a musl C compiler is needed (Debian: apt-get install musl-tools)" >&2
        exit 1
    }
    export CC_x86_64_unknown_linux_musl=musl-gcc
fi
# A toolchain installed before without the musl target gains it here.
musl=x86_64-unknown-linux-musl
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$musl"; then
    rustup target add "$musl" >&2
fi
# BUILD_PROFILE picks another cargo profile (the tests use `image-test`, a quick
# unoptimised one); the default is the optimised `release`.
profile=${BUILD_PROFILE:-release}
cargo build --profile "$profile" --locked --quiet -p vedfolnir-autoscaler --target "$musl"
rm -rf "$ctx"
# The state, cache and lock folders exist in the image, owned by the
# daemon's user, so named volumes mounted there start writable.
mkdir -p "$ctx/rootfs/var/lib/vedfolnir-autoscaler" "$ctx/rootfs/var/cache/vedfolnir-autoscaler" \
    "$ctx/rootfs/run/vedfolnir-autoscaler" "$ctx/rootfs/etc/vedfolnir/policies"
[ "$profile" = dev ] && dir=debug || dir=$profile
cp "target/$musl/$dir/vedfolnir-autoscaler" "$ctx/"
cp deploy/docker/Dockerfile "$ctx/"
out=$(docker build --quiet --tag "${IMAGE:-vedfolnir-autoscaler:latest}" "$ctx" 2>&1) || { echo "$out" >&2; exit 1; }
echo "built ${IMAGE:-vedfolnir-autoscaler:latest}"
