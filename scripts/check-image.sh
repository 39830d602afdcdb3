#!/usr/bin/env bash
# Builds the Dockerfile for real where there is no Docker engine and no image registry, then runs
# one command inside the built image's filesystem as the image's USER, in its WORKDIR, with its
# ENV. Our own equivalent of the team's shared container/check-image.sh (same approach: podman
# with chroot isolation, a debian:bookworm base made locally with debootstrap, the command run by
# chroot into the exported image because containers cannot be started here), kept in the
# repository so that nothing outside the clone is needed.
# Usage (as root, from anywhere): scripts/check-image.sh [-f Dockerfile] [-t TAG] [-- CMD ARGS...]
set -euo pipefail

cd "$(dirname "$0")/.."
dockerfile=Dockerfile
tag=localhost/tokenvend:check
while [ $# -gt 0 ]; do
    case "$1" in
    -f) dockerfile=$2 && shift 2 ;;
    -t) tag=$2 && shift 2 ;;
    --) shift && break ;;
    *) echo "usage: $0 [-f Dockerfile] [-t TAG] [-- CMD ARGS...]" >&2 && exit 2 ;;
    esac
done

missing=()
command -v podman >/dev/null || missing+=(podman)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi

# FROM debian:bookworm[-slim] must resolve without a registry: make the base from the Debian
# mirror apt already uses. Both source formats count (one-line .list and deb822 .sources, the
# Debian 12 default); a missing file must not abort the lookup under pipefail.
if ! podman image exists docker.io/library/debian:bookworm; then
    mirror=$({ sed 's/#.*//' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } |
        grep -oE 'https?://[^[:space:]]+' | grep -v security | head -n1 || true)
    rootfs=$(mktemp -d)
    echo "check-image: making debian:bookworm with debootstrap from ${mirror:-the default mirror}" >&2
    debootstrap --variant=minbase bookworm "$rootfs" ${mirror:+"$mirror"} >/dev/null
    tar -C "$rootfs" -c . | podman import - docker.io/library/debian:bookworm >/dev/null
    rm -rf "$rootfs"
fi
podman image exists docker.io/library/debian:bookworm-slim ||
    podman tag docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim

podman build --pull=never --isolation=chroot -f "$dockerfile" -t "$tag" .
[ $# -gt 0 ] || exit 0

# The image's filesystem, user, workdir and environment, as a container would have them.
fs=$(mktemp -d)
chmod 755 "$fs"
cid=$(podman create --entrypoint /bin/true "$tag")
podman export "$cid" | tar -C "$fs" -x
podman rm "$cid" >/dev/null
user=$(podman inspect -f '{{.Config.User}}' "$tag")
workdir=$(podman inspect -f '{{.Config.WorkingDir}}' "$tag")
mapfile -t image_env < <(podman inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$tag" |
    sed '/^$/d')
# chroot --userspec takes numbers or names from the host's passwd; resolve names in the image's.
userspec=${user:-0}
if [ -n "$user" ] && ! [[ "$user" =~ ^[0-9]+(:[0-9]+)?$ ]]; then
    name=${user%%:*}
    userspec="$(awk -F: -v n="$name" '$1 == n { print $3 ":" $4 }' "$fs/etc/passwd")"
fi
mkdir -p "$fs/proc" "$fs/dev"
touch "$fs/dev/null"
mount --bind /dev/null "$fs/dev/null" 2>/dev/null || true
rc=0
# shellcheck disable=SC2016 # $0 and $@ belong to the shell inside the image
env -i "${image_env[@]}" chroot --userspec="$userspec" "$fs" \
    /bin/sh -c 'cd "$0" && exec "$@"' "${workdir:-/}" "$@" || rc=$?
umount "$fs/dev/null" 2>/dev/null || true
rm -rf "$fs"
exit $rc
