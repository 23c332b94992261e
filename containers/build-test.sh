#!/usr/bin/env bash
# Build containers/Dockerfile with podman on a locally made base image and test the result, without a Docker
# engine or a container registry:
#
#   1. debootstrap Debian bookworm (minbase + python3, python3-venv) and `podman import` it as the base image;
#   2. `podman build --build-arg BASE_IMAGE=<that base>`, the proxy CA bundle handed in as a build secret
#      (`--secret id=ca,src=...`, used only inside RUN --mount=type=secret) and proxy variables passed through;
#   3. check the image: non-root user, entrypoint, health check, no CA secret left behind;
#   4. run `xrdbatch selfcheck`, the health check command, and a tiny end-to-end job in the image.
#
# Usage:  containers/build-test.sh [--keep] [--save FILE.tar]
#   --keep        keep the work directory (image storage) and print its path
#   --save FILE   also `podman save --format docker-archive` the image (input of the Apptainer build)
# Environment:
#   XRDBATCH_BUILD_DIR   work directory (default: a new temporary one; removed at the end unless --keep)
#   XRDBATCH_CA_BUNDLE   CA bundle for HTTPS inside the build (default /etc/ssl/certs/ca-certificates.crt)
#   DEBIAN_MIRROR        debootstrap mirror (default http://deb.debian.org/debian)
#   PODMAN_RUNTIME       OCI runtime for `podman run` (default: runc when installed; crun cannot set rlimits
#                        in some sandboxes)
#   XRDBATCH_BASE_TAR    reuse a rootfs tarball instead of running debootstrap
#   XRDBATCH_STORAGE_DRIVER  podman storage driver (default overlay; vfs where overlay mounts are refused,
#                        about 3x slower: every layer and every container is a full copy)
#
# Podman runs here as root in a VM without a container engine or systemd: its own storage under the work
# directory, chroot isolation for RUN steps, host networking, cgroupfs, runc, modest ulimits (the default
# RLIMIT_NOFILE of podman exceeds this VM's hard limit), --layers=false (one commit for the whole build).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
KEEP=0
SAVE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --keep) KEEP=1; shift ;;
        --save) SAVE="$(realpath -m "$2")"; shift 2 ;;
        *) echo "build-test.sh: unknown argument $1 (expected --keep, --save FILE)" >&2; exit 2 ;;
    esac
done

for tool in podman debootstrap; do
    command -v "$tool" >/dev/null || { echo "build-test.sh: $tool not found; run .ci/system-deps (apt-get install podman debootstrap runc)" >&2; exit 3; }
done

WORK="${XRDBATCH_BUILD_DIR:-$(mktemp -d /tmp/xrdbatch-build.XXXXXX)}"
mkdir -p "$WORK"
CA_BUNDLE="${XRDBATCH_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE_TAG="localhost/xrdbatch-base:bookworm"
IMAGE_TAG="localhost/xrdbatch:test"
RUNTIME="${PODMAN_RUNTIME:-$(command -v runc >/dev/null && echo runc || echo crun)}"
DRIVER="${XRDBATCH_STORAGE_DRIVER:-overlay}"
RUNROOT="$(mktemp -d /tmp/xrdrr.XXXXXX)"  # podman refuses a runroot path longer than 50 characters
PODMAN=(podman --root "$WORK/storage" --runroot "$RUNROOT" --storage-driver "$DRIVER" --cgroup-manager cgroupfs
        --events-backend file --runtime "$RUNTIME")
# --no-healthcheck: podman would schedule the image's HEALTHCHECK with systemd timers (none here); the same
# command is run explicitly below.
RUN_OPTS=(--rm --network host --no-healthcheck --ulimit nofile=4096:4096 --ulimit nproc=4096:4096)

cleanup() {
    if [ "$KEEP" = 1 ]; then
        echo "build-test.sh: kept $WORK (podman --root $WORK/storage --runroot $RUNROOT --storage-driver $DRIVER)"
    else
        "${PODMAN[@]}" rm -af >/dev/null 2>&1 || true
        "${PODMAN[@]}" rmi -af >/dev/null 2>&1 || true
        # overlay: unmount anything podman left mounted below the work directory before removing it
        awk -v w="$WORK" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
        # a --rm container's cleanup runs asynchronously (conmon's exit command) and may recreate the runroot
        for _ in $(seq 20); do pgrep -f "conmon.*$RUNROOT" >/dev/null || break; sleep 0.5; done
        rm -rf "$WORK" "$RUNROOT"
    fi
}
trap cleanup EXIT

T0=$SECONDS
phase() { echo "=== [$((SECONDS - T0)) s] $*"; }

# ---------------------------------------------------------------------------------- 1. base ----
if [ -n "${XRDBATCH_BASE_TAR:-}" ]; then
    phase "base image from $XRDBATCH_BASE_TAR"
    "${PODMAN[@]}" import --change 'CMD ["/bin/bash"]' "$XRDBATCH_BASE_TAR" "$BASE_TAG" >/dev/null
else
    phase "debootstrap bookworm minbase + python3 from $MIRROR"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$WORK/rootfs" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 \
        || { tail -30 "$WORK/debootstrap.log" >&2; echo "build-test.sh: debootstrap failed (log above)" >&2; exit 4; }
    rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"*
    phase "podman import -> $BASE_TAG"
    tar -C "$WORK/rootfs" -c . | "${PODMAN[@]}" import --change 'CMD ["/bin/bash"]' - "$BASE_TAG" >/dev/null
    rm -rf "$WORK/rootfs"
fi

# --------------------------------------------------------------------------------- 2. build ----
BUILD_ARGS=(--build-arg "BASE_IMAGE=$BASE_TAG")
for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL PIP_TRUSTED_HOST; do
    # proxy settings and an http(s) package index pass through as build args (never ENV in the image);
    # file:// indexes of the host are not visible inside the build and stay out.
    val="${!var:-}"
    case "$val" in ""|file:*) ;; *) BUILD_ARGS+=(--build-arg "$var=$val") ;; esac
done
SECRETS=()
if [ -s "$CA_BUNDLE" ]; then SECRETS=(--secret "id=ca,src=$CA_BUNDLE"); fi
phase "podman build (base $BASE_TAG, CA secret: ${CA_BUNDLE:-none}, runtime isolation chroot)"
"${PODMAN[@]}" build --isolation chroot --network host --pull=never --format docker --layers=false \
    "${SECRETS[@]}" "${BUILD_ARGS[@]}" -f "$HERE/Dockerfile" -t "$IMAGE_TAG" "$REPO"
phase "built $IMAGE_TAG: $("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE_TAG" | awk '{printf "%.0f MB", $1/1e6}')"

# --------------------------------------------------------------------------------- 3. check ----
inspect() { "${PODMAN[@]}" image inspect --format "$1" "$IMAGE_TAG"; }
USER_IN_IMAGE="$(inspect '{{.Config.User}}')"
ENTRYPOINT="$(inspect '{{json .Config.Entrypoint}}')"
HEALTH="$(inspect '{{json .Config.Healthcheck}}')"
echo "user=$USER_IN_IMAGE entrypoint=$ENTRYPOINT healthcheck=$HEALTH"
[ -n "$USER_IN_IMAGE" ] && [ "$USER_IN_IMAGE" != "root" ] && [ "$USER_IN_IMAGE" != "0" ] \
    || { echo "FAIL: image runs as root (User='$USER_IN_IMAGE')" >&2; exit 5; }
[ "$ENTRYPOINT" = '["xrdbatch"]' ] || { echo "FAIL: entrypoint $ENTRYPOINT, expected [\"xrdbatch\"]" >&2; exit 5; }
case "$HEALTH" in *selfcheck*) ;; *) echo "FAIL: no selfcheck HEALTHCHECK ($HEALTH)" >&2; exit 5 ;; esac
if "${PODMAN[@]}" history --no-trunc --format '{{.CreatedBy}}' "$IMAGE_TAG" | grep -q "BEGIN CERTIFICATE"; then
    echo "FAIL: certificate text in the image history" >&2; exit 5
fi
"${PODMAN[@]}" run "${RUN_OPTS[@]}" --entrypoint /bin/sh "$IMAGE_TAG" -c \
    'test ! -e /run/secrets/ca && ! pip config list 2>/dev/null | grep -qi cert && id -un' \
    || { echo "FAIL: the CA secret or a pip cert setting is left in the image" >&2; exit 5; }

# ----------------------------------------------------------------------------------- 4. run ----
phase "xrdbatch selfcheck in the image"
"${PODMAN[@]}" run "${RUN_OPTS[@]}" "$IMAGE_TAG" selfcheck
phase "health check command (xrdbatch selfcheck --quick)"
"${PODMAN[@]}" run "${RUN_OPTS[@]}" "$IMAGE_TAG" selfcheck --quick >/dev/null

phase "tiny end-to-end job in the image (bind-mounted work folder)"
E2E="$WORK/e2e"
mkdir -p "$E2E" && chmod 0777 "$E2E"
"${PODMAN[@]}" run "${RUN_OPTS[@]}" -v "$E2E:/work" -v "$HERE/e2e-job.sh:/e2e-job.sh:ro" \
    --entrypoint /bin/bash "$IMAGE_TAG" /e2e-job.sh
ls -la "$E2E"

if [ -n "$SAVE" ]; then
    phase "podman save --format docker-archive -> $SAVE"
    "${PODMAN[@]}" save --format docker-archive -o "$SAVE" "$IMAGE_TAG"
fi
phase "container build test passed"
