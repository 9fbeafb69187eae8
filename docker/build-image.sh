#!/usr/bin/env bash
# Build the distlog image without any container registry:
#   1. the release binary, built on this host (Debian bookworm, like the image);
#   2. the base image distlog-base:bookworm, a minimal Debian root file system made
#      with debootstrap from the Debian package mirror and loaded with `docker import`
#      (cached: as an image, and as a tarball under $DISTLOG_IMAGE_CACHE, default
#      ~/.cache/distlog, so later runs skip debootstrap);
#   3. the runtime image of docker/Dockerfile on top of them (target runtime-prebuilt,
#      with the classic builder: no BuildKit or buildx needed), tagged $DISTLOG_IMAGE
#      (default distlog:latest).
# Usage: docker/build-image.sh   (from anywhere; debootstrap needs root the first time)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

IMAGE="${DISTLOG_IMAGE:-distlog:latest}"
BASE="${DISTLOG_BASE_IMAGE:-distlog-base:bookworm}"
CACHE="${DISTLOG_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/distlog}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

log() { echo "build-image: $*" >&2; }

log "building the release binary"
cargo build --release --locked -p distlog-broker
# The release profile keeps debug info (for profiling); the image does not need it.
mkdir -p target/docker
objcopy --strip-debug target/release/distlog target/docker/distlog

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  tarball="$CACHE/debian-bookworm-minbase.tar"
  if [ ! -s "$tarball" ]; then
    if ! command -v debootstrap >/dev/null 2>&1; then
      log "installing debootstrap"
      apt-get install -y -q debootstrap >/dev/null
    fi
    mkdir -p "$CACHE"
    root="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
    trap 'rm -rf "$root"' EXIT
    log "debootstrap bookworm (minbase) from $MIRROR"
    debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || {
      tail -n 30 "$CACHE/debootstrap.log" >&2
      exit 1
    }
    # What a slim image leaves out: package lists and caches, docs, man pages, locales.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* \
      "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/* "$root"/tmp/*
    find "$root"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
    tar --numeric-owner -C "$root" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
    trap - EXIT
  fi
  log "importing $tarball as $BASE"
  docker import --change 'CMD ["bash"]' "$tarball" "$BASE" >/dev/null
fi

log "building $IMAGE from $BASE"
DOCKER_BUILDKIT=0 docker build -q -f docker/Dockerfile \
  --target runtime-prebuilt \
  --build-arg RUNTIME_BASE="$BASE" \
  -t "$IMAGE" . >/dev/null
log "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}'))"
