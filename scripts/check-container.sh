#!/usr/bin/env bash
# Checks the container files without a Docker engine:
#   1. docker-compose.yml and compose.replicas.yaml against the Compose Specification's JSON schema
#      plus the project's rules (tests/e2e/tools/check-compose*.mjs): every service read-only with
#      a /tmp tmpfs, ALL capabilities dropped, no-new-privileges, not root, a health check (with
#      `tokenvend healthcheck` in the project's image, which has no curl), depends_on only with
#      condition: service_healthy, secrets only from files; and each recipe's own rules;
#   2. the Dockerfile built for real by scripts/check-image.sh (podman, as root); the image at most
#      40 MB, no curl in it, HEALTHCHECK `tokenvend healthcheck`; then the image's root filesystem
#      mounted READ-ONLY as a container with read_only: true has it (tmpfs on /data and /tmp only,
#      /dev/null, /dev/urandom and /proc provided as a runtime does), and in it, as the image's
#      user with no_new_privs and no capabilities: the libraries resolve, the root refuses writes,
#      acs-emulator serves with its key from a connection-string file (--access-key-from),
#      `tokenvend serve` starts against it with the image's defaults (SQLite at
#      /data/tokenvend.db), the image's own HEALTHCHECK command passes, the serve process runs as
#      uid 10001 with no capabilities, an API key made by the admin CLI creates an identity, and
#      SIGTERM ends both with exit 0.
# Containers cannot be started here (no engine), so the processes run by chroot into the mounted
# root, sharing the host's loopback network; the hardening a runtime would apply (read-only
# root, no capabilities, no_new_privs, the user) is applied by hand and then checked on the
# running process.
# Usage: scripts/check-container.sh [--compose-only]        (the image part: root, podman)
# Env: CHECK_IMAGE_TAG (default localhost/tokenvend:check); CHECK_IMAGE_NO_BUILD=1 checks the image
#      already under that tag instead of building the Dockerfile (e.g. one built elsewhere).
# The schema is tests/container/compose-spec.json (origin and licence in tests/container/README.md).
set -euo pipefail

cd "$(dirname "$0")/.."
compose_only=${1:-}

if [ ! -d tests/e2e/node_modules/ajv ] || [ ! -d tests/e2e/node_modules/yaml ]; then
    (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi
node tests/e2e/tools/check-compose.mjs docker-compose.yml tests/container/compose-spec.json
node tests/e2e/tools/check-compose.mjs compose.replicas.yaml tests/container/compose-spec.json replicas

if [ "$compose_only" = --compose-only ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "check-container: the image check needs root (podman with chroot isolation); skipped" >&2
    exit 1
fi

# The docker image format keeps HEALTHCHECK (OCI drops it with a warning).
export BUILDAH_FORMAT=docker
tag=${CHECK_IMAGE_TAG:-localhost/tokenvend:check}
max_bytes=40000000
if [ -z "${CHECK_IMAGE_NO_BUILD:-}" ]; then
    scripts/check-image.sh -t "$tag"
fi

work=$(mktemp -d /tmp/tv-check-container.XXXXXX)
chmod 755 "$work"
root=$work/root
mounts=()
pids=()
cleanup() {
    local i
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[$i]}" 2>/dev/null || umount -l "${mounts[$i]}" || true; done
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "check-container: $*" >&2
    for f in "$work"/*.log; do
        [ -s "$f" ] && { echo "--- ${f##*/}" >&2 && tail -n 30 "$f" >&2; }
    done
    exit 1
}
mnt() { # mnt TARGET MOUNT-ARGS...
    local target=$1
    shift
    mount "$@" "$target"
    mounts+=("$target")
}
free_port() {
    node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => {
        process.stdout.write(String(s.address().port)); s.close(); });'
}

# --- the image as built -------------------------------------------------------------------------
size=$(podman image inspect --format '{{.Size}}' "$tag")
[ "$size" -le "$max_bytes" ] || fail "the image is $size bytes, more than $max_bytes"
podman image inspect "$tag" >"$work/inspect.json"
# The image's user, working directory, environment and HEALTHCHECK command, one per line.
node -e '
    const c = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))[0];
    const cfg = c.Config || {};
    const hc = cfg.Healthcheck || c.Healthcheck || (c.ContainerConfig || {}).Healthcheck || {};
    const t = hc.Test || [];
    if (t[0] !== "CMD") { console.error("HEALTHCHECK is not an exec-form CMD: " + JSON.stringify(t)); process.exit(1); }
    console.log(cfg.User || "");
    console.log(cfg.WorkingDir || "/");
    console.log(JSON.stringify(t.slice(1)));
    for (const e of cfg.Env || []) console.log(e);
' "$work/inspect.json" >"$work/config.txt" || fail "cannot read the image configuration"
user=$(sed -n 1p "$work/config.txt")
workdir=$(sed -n 2p "$work/config.txt")
mapfile -t hc_cmd < <(sed -n 3p "$work/config.txt" | node -e '
    for (const a of JSON.parse(require("fs").readFileSync(0, "utf8"))) console.log(a);')
mapfile -t image_env < <(sed -n '4,$p' "$work/config.txt")
[[ "$user" =~ ^([0-9]+):([0-9]+)$ ]] || fail "USER is '$user', not numeric uid:gid"
uid=${BASH_REMATCH[1]}
gid=${BASH_REMATCH[2]}
[ "$uid" -ne 0 ] || fail "the image runs as root"
# chroot enters /; the image's default database path (data/tokenvend.db) relies on WORKDIR /.
[ "$workdir" = / ] || fail "WORKDIR is $workdir, expected /"
[ "${hc_cmd[*]}" = "tokenvend healthcheck" ] || fail "HEALTHCHECK runs '${hc_cmd[*]}', expected tokenvend healthcheck"

# --- its root filesystem, read-only ---------------------------------------------------------------
mkdir -p "$work/image" "$root"
cid=$(podman create --no-healthcheck --entrypoint /bin/true "$tag")
podman export "$cid" | tar -C "$work/image" -x
podman rm "$cid" >/dev/null
if find "$work/image" -name curl -o -name 'curl-*' | grep -q .; then fail "curl is in the image"; fi
# A runtime provides /dev and /proc as mount points; the image need not hold them.
mkdir -p "$work/image/dev" "$work/image/proc"
touch "$work/image/dev/null" "$work/image/dev/urandom"
mnt "$root" --bind "$work/image"
mount -o remount,bind,ro "$root"
mnt "$root/data" -t tmpfs -o "size=64m,mode=0700,uid=$uid,gid=$gid" tmpfs
mnt "$root/tmp" -t tmpfs -o size=16m,mode=1777 tmpfs
mnt "$root/dev/null" --bind /dev/null
mnt "$root/dev/urandom" --bind /dev/urandom
mnt "$root/proc" -t proc proc

setpriv_bin=$(command -v setpriv)
chroot_bin=$(command -v chroot)
# image_argv [NAME=VALUE...] CMD ARGS... : sets img_argv to the command line that runs CMD inside
# the read-only root with the image's environment (plus the assignments), as uid:gid, with
# no_new_privs; the bounding set keeps only what chroot needs to get there, and the switch to a
# non-root uid drops even those before CMD runs. Every step execs the next, so a background job
# started with "${img_argv[@]}" & has CMD's process id in $!.
image_argv() {
    local assigns=()
    while [ $# -gt 0 ] && [[ "$1" == *=* ]] && [[ "$1" != /* ]]; do
        assigns+=("$1")
        shift
    done
    # shellcheck disable=SC2054 # the commas belong to --bounding-set's value
    img_argv=(env -i "${image_env[@]}" "${assigns[@]}" "$setpriv_bin" --no-new-privs
        --bounding-set=-all,+sys_chroot,+setuid,+setgid
        "$chroot_bin" --userspec="$uid:$gid" --groups="$gid" "$root" "$@")
}
in_image() {
    image_argv "$@"
    "${img_argv[@]}"
}

# The loader resolves every library of both binaries from the image alone.
for b in /usr/local/bin/tokenvend /usr/local/bin/acs-emulator; do
    in_image /lib64/ld-linux-x86-64.so.2 --list "$b" >"$work/ldd.log" 2>&1 || fail "the loader cannot list $b"
    if grep -q "not found" "$work/ldd.log"; then fail "missing shared libraries for $b"; fi
done
in_image tokenvend version >"$work/version.log" 2>&1 || fail "tokenvend version failed"
in_image acs-emulator --help >/dev/null 2>&1 || fail "acs-emulator --help failed"
# The root refuses writes; /data and /tmp take them.
if in_image sh -c 'echo x >/etc/tv-probe' 2>/dev/null; then fail "the root filesystem took a write"; fi
in_image sh -c 'echo x >/data/.probe && echo x >/tmp/.probe' || fail "/data or /tmp is not writable"

# acs-emulator, its key from a connection-string file as compose mounts it (0400, its owner).
key=$(head -c 48 /dev/urandom | base64 -w0)
printf 'endpoint=http://acs-emulator:8090/;accesskey=%s\n' "$key" >"$root/data/acs_key_source"
chown "$uid:$gid" "$root/data/acs_key_source"
chmod 0400 "$root/data/acs_key_source"
image_argv acs-emulator --listen 127.0.0.1:0 --access-key-from /data/acs_key_source \
    --db /data/acs-emulator.db
"${img_argv[@]}" >"$work/emu.out" 2>"$work/emu.log" &
emu=$!
pids+=("$emu")
for _ in $(seq 1 200); do
    grep -q '^endpoint=' "$work/emu.out" && break
    kill -0 "$emu" 2>/dev/null || break
    sleep 0.1
done
# It prints only its endpoint (the key stays in the file: stdout is a container log); tokenvend
# below serves with the file's key against it, which tells a wrong key from a right one.
endpoint=$(head -n 1 "$work/emu.out")
[[ "$endpoint" == endpoint=http://127.0.0.1:*/ ]] || fail "acs-emulator printed no endpoint (or its key)"
cs="$endpoint;accesskey=$key"
endpoint=${endpoint#endpoint=}
in_image tokenvend healthcheck --url "${endpoint}emulator/jwks" >"$work/emu-hc.log" 2>&1 ||
    fail "tokenvend healthcheck --url on the emulator failed"

# tokenvend serve with the image's defaults: only the addresses and the ACS secret file given.
printf '%s\n' "$cs" >"$root/data/acs_connection_string"
chown "$uid:$gid" "$root/data/acs_connection_string"
chmod 0400 "$root/data/acs_connection_string"
pub=$(free_port)
int=$(free_port)
tv_env=("TOKENVEND_PUBLIC_ADDR=127.0.0.1:$pub" "TOKENVEND_INTERNAL_ADDR=127.0.0.1:$int"
    "TOKENVEND_ACS_CONNECTION_STRING_FILE=/data/acs_connection_string")
image_argv "${tv_env[@]}" tokenvend serve
"${img_argv[@]}" >"$work/serve.out" 2>"$work/serve.log" &
tv=$!
pids+=("$tv")
healthy=
for _ in $(seq 1 300); do
    if in_image "${tv_env[@]}" "${hc_cmd[@]}" >"$work/hc.log" 2>&1; then
        healthy=1
        break
    fi
    kill -0 "$tv" 2>/dev/null || break
    sleep 0.2
done
[ -n "$healthy" ] || fail "tokenvend serve never passed the image's HEALTHCHECK (${hc_cmd[*]})"
in_image "${tv_env[@]}" tokenvend healthcheck --internal >>"$work/hc.log" 2>&1 ||
    fail "tokenvend healthcheck --internal failed"
[ -f "$root/data/tokenvend.db" ] || fail "the database is not at the default /data/tokenvend.db"

# The serving process: the image's user, no capabilities, no_new_privs, in the read-only root.
status=$(cat "/proc/$tv/status")
grep -Eq "^Uid:[[:space:]]+${uid}[[:space:]]+${uid}[[:space:]]+${uid}[[:space:]]+${uid}$" <<<"$status" ||
    fail "tokenvend serve does not run as uid $uid: $(grep ^Uid: <<<"$status")"
grep -Eq "^Gid:[[:space:]]+${gid}[[:space:]]+${gid}[[:space:]]+${gid}[[:space:]]+${gid}$" <<<"$status" ||
    fail "tokenvend serve does not run as gid $gid"
grep -Eq '^CapEff:[[:space:]]+0+$' <<<"$status" || fail "tokenvend serve holds capabilities"
grep -Eq '^CapPrm:[[:space:]]+0+$' <<<"$status" || fail "tokenvend serve holds permitted capabilities"
grep -Eq '^NoNewPrivs:[[:space:]]+1$' <<<"$status" || fail "tokenvend serve may gain privileges"
[ "$(readlink "/proc/$tv/root")" = "$root" ] || fail "tokenvend serve is not in the image's root"
awk -v r="$root" '$2 == r { print $4 }' /proc/mounts | grep -Eq '(^|,)ro(,|$)' ||
    fail "the image's root is not mounted read-only"

# The admin CLI beside the running service, then an identity through the internal API.
in_image tokenvend apikey create probe >"$work/apikey.out" 2>"$work/apikey.log" || fail "apikey create failed"
apikey=$(tail -n 1 "$work/apikey.out")
code=$(curl -sS -o "$work/put.log" -w '%{http_code}' -X PUT -H "Authorization: Bearer $apikey" \
    "http://127.0.0.1:$int/internal/users/probe") || fail "PUT /internal/users/probe: no answer"
[[ "$code" == 20[01] ]] || fail "PUT /internal/users/probe answered $code"
unset apikey

kill -TERM "$tv"
rc=0
wait "$tv" || rc=$?
[ "$rc" -eq 0 ] || fail "tokenvend serve exited $rc on SIGTERM"
kill -TERM "$emu"
rc=0
wait "$emu" || rc=$?
[ "$rc" -eq 0 ] || fail "acs-emulator exited $rc on SIGTERM"
pids=()
echo "image: OK ($tag: $size bytes, at most $max_bytes; user $uid:$gid, read-only root with" \
    "tmpfs /data and /tmp, no capabilities, no_new_privs; emulator $endpoint; tokenvend serve" \
    "on 127.0.0.1:$pub and :$int passed '${hc_cmd[*]}')"
