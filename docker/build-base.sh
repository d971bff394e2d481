#!/usr/bin/env bash
# Build a local Debian bookworm base image from Debian packages, for machines
# that cannot pull images from a registry:
#
#   docker/build-base.sh [--rebuild] [IMAGE]     # default hfed-base:bookworm
#
# Then build the node image on it:
#   docker build --network host --build-arg BASE_IMAGE=hfed-base:bookworm -f docker/Dockerfile .
#
# Idempotent: an existing IMAGE is reused as it is (--rebuild makes it
# again). Needs root, debootstrap and a running Docker engine. The image
# holds Debian's python3 (3.11 on bookworm), python3-venv and ca-certificates,
# with bookworm's security and point-release updates: what docker/Dockerfile
# and docker/postgres/Dockerfile expect of a base. apt works in it, pointed at
# the same mirror (DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR).
set -euo pipefail

rebuild=0
if [ "${1:-}" = --rebuild ]; then
    rebuild=1
    shift
fi
image="${1:-hfed-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security_mirror="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
suite=bookworm
packages=python3,python3-venv,ca-certificates

if [ "$rebuild" = 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "base image $image exists; reusing it (--rebuild makes it again)"
    exit 0
fi
command -v debootstrap >/dev/null || {
    echo "Error: debootstrap is not installed (apt-get install debootstrap)" >&2
    exit 1
}

rootfs="$(mktemp -d /var/tmp/hfed-base.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
chmod 0755 "$rootfs" # it becomes the image's /

echo "debootstrap $suite (minbase + $packages) into $rootfs"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    tail -20 "$rootfs.log" >&2
    rm -f "$rootfs.log"
    exit 1
}
rm -f "$rootfs.log"

# The same mirror with its security and updates suites, as Debian's images
# have; debootstrap took bookworm's release only, so bring in the updates.
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security_mirror $suite-security main
EOF
# Packages installed on this base later (docker/postgres) skip what a
# container never reads.
printf 'path-exclude /usr/share/%s/*\n' doc man info locale \
    >"$rootfs/etc/dpkg/dpkg.cfg.d/hfed-base-excludes"
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
# Quiet unless it fails (apt grumbles about the missing /dev/pts in a chroot).
chroot "$rootfs" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq && apt-get clean' \
    >"$rootfs.log" 2>&1 || {
    tail -20 "$rootfs.log" >&2
    rm -f "$rootfs.log"
    exit 1
}
rm -f "$rootfs.log"

# Downloaded packages, package lists (apt-get update fetches them again),
# documentation and the build host's resolver stay out of the image.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/*
: >"$rootfs/etc/resolv.conf"

tar -C "$rootfs" --numeric-owner -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase $suite + $packages" \
    - "$image"
echo "base image $image: $(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')"
