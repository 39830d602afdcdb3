#!/usr/bin/env bash
# scripts/check-src.sh (the banned-call check): finds real calls with file:line and the reason,
# and leaves alone what is not a call of the banned function (comments, strings, longer names,
# members, an allowed line). The repository's own sources pass it.
# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

cat >"$tmp/bad.c" <<'C'
#include <string.h>
static void f(char *d, const char *s)
{
    strcpy(d, s);
    d += sprintf (d, "%s", s);
    int n = atoi(s);
    (void)n;
}
C
out=$(scripts/check-src.sh "$tmp/bad.c" 2>&1)
rc=$?
check "banned calls fail the check" "$([ $rc -eq 1 ] && echo 0 || echo 1)" "$out"
grep -q "bad.c:4: strcpy() is banned: no bound" <<<"$out"
check "strcpy reported at its file:line with the reason" $? "$out"
grep -q "bad.c:5: sprintf() is banned" <<<"$out"
check "sprintf with a space before ( is found" $? "$out"
grep -q "bad.c:6: atoi() is banned" <<<"$out"
check "atoi is found" $? "$out"
grep -q "3 banned call(s)" <<<"$out"
check "the count is printed" $? "$out"

cat >"$tmp/good.c" <<'C'
/* strcpy(d, s) in a comment,
 * and gets(buf) on a second comment line */
#include <stdio.h>
struct ops { int (*atoi)(const char *); };
static int g(struct ops *o, const struct ops *q, const char *s)
{
    char b[16];
    snprintf(b, sizeof b, "strcat(%s)", s); // sprintf(b) after a line comment
    (void)my_strcpy(b); (void)strtok_r(b, ",", &s);
    return o->atoi(s) + q[0].atoi("'\"atoi(") + atoi(s); /* check-src: allow atoi (test) */
}
C
out=$(scripts/check-src.sh "$tmp/good.c" 2>&1)
check "comments, strings, longer names, members and allowed lines pass" $? "$out"

out=$(scripts/check-src.sh 2>&1)
check "src, include and tests/lib have no banned call" $? "$out"
finish
