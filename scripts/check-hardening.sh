#!/usr/bin/env bash
# Checks that release binaries carry the Makefile's hardening (HARDEN_CFLAGS/HARDEN_LDFLAGS):
# full RELRO (a GNU_RELRO segment and BIND_NOW), stack canaries (__stack_chk_fail imported)
# and _FORTIFY_SOURCE (at least one checked __*_chk libc call imported). Needs readelf (binutils).
# Usage: scripts/check-hardening.sh BINARY...      Exit 1 naming each binary and what it lacks.
set -euo pipefail

status=0
for bin in "$@"; do
    missing=()
    readelf -lW "$bin" | grep -q 'GNU_RELRO' || missing+=("RELRO (-Wl,-z,relro)")
    readelf -dW "$bin" | grep -qE 'BIND_NOW|FLAGS.*NOW' || missing+=("BIND_NOW (-Wl,-z,now)")
    syms=$(readelf --dyn-syms -W "$bin")
    grep -q '__stack_chk_fail' <<<"$syms" || missing+=("stack protector (-fstack-protector-strong)")
    grep -qE '__[a-z]+_chk(@|$| )' <<<"$syms" || missing+=("_FORTIFY_SOURCE (no __*_chk calls)")
    if [ ${#missing[@]} -gt 0 ]; then
        echo "check-hardening: $bin lacks: $(printf '%s; ' "${missing[@]}")" >&2
        status=1
    else
        echo "check-hardening: $bin: RELRO, BIND_NOW, stack protector, FORTIFY_SOURCE"
    fi
done
exit $status
