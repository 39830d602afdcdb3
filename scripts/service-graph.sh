#!/bin/sh
# Prints the dependency graphs of src/service and fails when one has a cycle.
#   includes: file -> header, for every #include "..." of src/service/*.[ch] and
#             include/service/*.h that names one of those files;
#   modules:  X.c -> Y.c when X.c includes Y_int.h (the header of Y.c's functions);
#   calls:    X.o -> Y.o when X.o uses a function or object Y.o defines (nm; needs the build).
# Each graph goes through tsort, which reports any loop. Usage: scripts/service-graph.sh [BUILD]
set -u
build=${1:-build}
cd "$(dirname "$0")/.." || exit 2
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
status=0

# includes (files); names resolved as the compiler does: next to the file, then include/.
for f in src/service/*.c src/service/*.h include/service/*.h; do
    sed -n 's/^#include "\(.*\)"/\1/p' "$f" | while read -r h; do
        if [ -f "$(dirname "$f")/$h" ]; then
            echo "$f $(dirname "$f")/$h"
        elif [ -f "include/$h" ] && [ "${h%%/*}" = service ]; then
            echo "$f include/$h"
        fi
    done
done >"$tmp/includes"

# modules: a .c and its _int.h are one node.
for f in src/service/*.c; do
    m=$(basename "$f" .c)
    sed -n 's/^#include "\(.*\)_int\.h"/\1/p' "$f" | while read -r h; do
        [ "$h" != "$m" ] && [ -f "src/service/$h.c" ] && echo "$m $h"
    done
done | sort -u >"$tmp/modules"

# calls: defined and undefined global symbols of each object (of the sources there are now;
# an object older than its source is refused rather than read).
: >"$tmp/defs"
: >"$tmp/uses"
for f in src/service/*.c; do
    m=$(basename "$f" .c)
    o="$build/obj/src/service/$m.o"
    if [ ! -f "$o" ] || [ "$f" -nt "$o" ]; then
        echo "service-graph: $o missing or older than $f (run make first)"
        exit 2
    fi
    nm -g --defined-only "$o" | awk -v m="$m" '{print $3, m}' >>"$tmp/defs"
    nm -u "$o" | awk -v m="$m" '{print $2, m}' >>"$tmp/uses"
done
sort -o "$tmp/defs" "$tmp/defs"
sort -o "$tmp/uses" "$tmp/uses"
join "$tmp/uses" "$tmp/defs" | awk '$2 != $3 {print $2, $3}' | sort -u >"$tmp/calls"

for g in includes modules calls; do
    n=$(wc -l <"$tmp/$g")
    echo "== $g ($n edges)"
    sed 's/ / -> /' "$tmp/$g"
    if ! tsort "$tmp/$g" >/dev/null 2>"$tmp/err"; then
        cat "$tmp/err"
        echo "service-graph: the $g graph has a cycle"
        status=1
    fi
done
[ $status -eq 0 ] && echo "service-graph: no cycle in the includes, modules or calls of src/service"
exit $status
