#!/usr/bin/env bash
# Shell tests of `tokenvend account logout NAME` (issue 12) on a temporary SQLite database: it
# gives the account a new session epoch and nothing else (the password hash stays), deletes the
# account's session refresh tokens and no one else's, adds an audit row, and refuses an unknown
# name (exit 1) or a bad one (exit 2). Then against a running `tokenvend serve` with local
# accounts: a login's refresh cookie rotates, and after `account logout` both the cookie and the
# session token are refused. Ends with "N passed, N failed"; exits non-zero on any failure.
set -u

# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

if [ ! -x "$TV" ]; then
    not_ok "binary exists ($TV)"
    finish
fi
clear_acs_env
mkdir -p "$tmp/data"
db=$tmp/data/tv.db
export TOKENVEND_DB=$db TOKENVEND_LOG_LEVEL=warn TOKENVEND_ARGON2=t=1,m=1024
q() { sqlite3 "$db" "$1"; }

"$TV" migrate >/dev/null 2>&1
run_in add $'alice-password-1\n' account add alice
check "account add alice" $([ $rc -eq 0 ]; echo $?) "$(detail add)"
run_in add2 $'bob-password-123\n' account add bob
epoch0=$(q "SELECT session_epoch FROM accounts WHERE name = 'alice'")
hash0=$(q "SELECT password_hash FROM accounts WHERE name = 'alice'")
bob0=$(q "SELECT session_epoch FROM accounts WHERE name = 'bob'")
# Two refresh tokens of alice (two families) and one of bob, as a login would store them.
for row in "a1|fa|alice" "a2|fb|alice" "b1|fc|bob"; do
    IFS='|' read -r id fam acct <<<"$row"
    q "INSERT INTO session_refresh VALUES ('$id', '$fam', '$acct', 0, zeroblob(32), 1, 9999999999999, 9999999999999, NULL)"
done

run out account logout alice
check "account logout alice -> exit 0" $([ $rc -eq 0 ]; echo $?) "$(detail out)"
check "it prints {name, loggedOut: true}" \
    $(json_ok "$tmp/out.out" 'o.name === "alice" && o.loggedOut === true && Object.keys(o).length === 2'; echo $?) \
    "$(cat "$tmp/out.out")"
epoch1=$(q "SELECT session_epoch FROM accounts WHERE name = 'alice'")
check "alice's session epoch changed" $([ "$epoch0" != "$epoch1" ]; echo $?) "$epoch0 -> $epoch1"
check "alice's password hash stays" \
    $([ "$hash0" = "$(q "SELECT password_hash FROM accounts WHERE name = 'alice'")" ]; echo $?)
check "bob's epoch stays" $([ "$bob0" = "$(q "SELECT session_epoch FROM accounts WHERE name = 'bob'")" ]; echo $?)
left=$(q "SELECT group_concat(id) FROM session_refresh")
check "alice's refresh tokens are gone, bob's stays" $([ "$left" = "b1" ]; echo $?) "left: $left"
check "an audit row account_logout" \
    $([ "$(q "SELECT count(*) FROM audit WHERE action = 'account_logout' AND app_user_id = 'alice'")" = 1 ]; echo $?)

run unknown account logout nobody
check "account logout of an unknown name -> exit 1" $([ $rc -eq 1 ]; echo $?) "$(detail unknown)"
grep -q "no account named 'nobody'" "$tmp/unknown.err"
check "it says so" $?
run bad account logout 'bad name!'
check "account logout with a bad name -> exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail bad)"
run none account logout
check "account logout without a name -> exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail none)"
run help account --help
grep -q "logout NAME" "$tmp/help.out"
check "account --help lists logout" $?

# Against the running service: login, refresh, account logout, then the cookie and the session
# token are refused.
if [ ! -x "$EMU" ]; then
    not_ok "binary exists ($EMU)"
    finish
fi
start_emulator_or_finish
start_serve_or_finish TOKENVEND_LOCAL_ACCOUNTS=on
node -e '
    const [base, user, pass, cli] = process.argv.slice(1);
    const { execFileSync } = require("child_process");
    const post = (path, body, cookie, token) => fetch(base + path, { method: "POST", body,
        headers: { "content-type": "application/json", ...(cookie ? { cookie } : {}),
                   ...(token ? { authorization: "Bearer " + token } : {}) } });
    const jar = (r) => (r.headers.get("set-cookie") || "").split(";")[0];
    (async () => {
        const l = await post("/api/login", JSON.stringify({ username: user, password: pass }));
        const lj = await l.json();
        const c1 = jar(l);
        const r1 = await post("/api/session/refresh", "{}", c1);
        const c2 = jar(r1);
        const who = async (t) => (await fetch(base + "/api/user", { headers: { authorization: "Bearer " + t } })).status;
        const before = await who(lj.access_token);
        execFileSync(cli, ["account", "logout", user], { stdio: "ignore" });
        const r2 = await post("/api/session/refresh", "{}", c2);
        let after = 0;
        for (let i = 0; i < 50 && after !== 401; i++) {
            after = await who(lj.access_token);
            if (after !== 401) await new Promise((r) => setTimeout(r, 100));
        }
        process.stdout.write(JSON.stringify({ login: l.status, c1: c1.length, r1: r1.status, changed: c1 !== c2,
            r2: r2.status, before, after }));
    })().catch((e) => { console.error(String(e)); process.exit(1); });
' "http://127.0.0.1:$pp" bob bob-password-123 "$TV" >"$tmp/live.out" 2>"$tmp/live.err"
check "login 200 with a tv_refresh cookie, refresh 200 with a new one" \
    $(json_ok "$tmp/live.out" 'o.login === 200 && o.c1 > 20 && o.r1 === 200 && o.changed'; echo $?) \
    "$(cat "$tmp/live.out" "$tmp/live.err")"
check "after account logout: the refresh cookie 401, the session token (accepted before) 401" \
    $(json_ok "$tmp/live.out" 'o.before !== 401 && o.r2 === 401 && o.after === 401'; echo $?) "$(cat "$tmp/live.out")"
finish
