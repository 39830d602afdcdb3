#!/usr/bin/env bash
# Shell tests of the tokenvend CLI against a private acs-emulator: every `tokenvend acs ...`
# command's JSON, the exit codes (0 ok, 1 ACS failure, 2 usage/config), `tokenvend quickstart`,
# `config check` redaction and the help texts. JSON is checked with node (no jq/python needed).
# Ends with "N passed, N failed"; exits non-zero on any failure.
set -u

# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

# http METHOD PATH [BODY] : a control-plane call to the emulator; prints the body.
http() {
    node -e '
        const [m, url, body] = process.argv.slice(1);
        fetch(url, {method: m, body: body || undefined,
                    headers: body ? {"content-type": "application/json"} : {}})
            .then(r => r.text()).then(t => process.stdout.write(t))
            .catch(e => { console.error(String(e)); process.exit(1); });
    ' "$1" "$base$2" "${3:-}"
}

if [ ! -x "$TV" ] || [ ! -x "$EMU" ]; then
    not_ok "binaries exist ($TV, $EMU)"
    finish
fi

# --- Commands that need no ACS -----------------------------------------------------------------
clear_acs_env
export TOKENVEND_LOG_LEVEL=warn

run version version
check "version prints the version" $([ $rc -eq 0 ] && grep -q '^tokenvend [0-9]' "$tmp/version.out"; echo $?)

# No core files: a crash dump would hold secrets. Seen in a running command's limits (account add
# waits for the password on stdin).
(sleep 4) | "$TV" account add corecheck >/dev/null 2>&1 &
core_pid=$!
core_lim=
for _ in $(seq 50); do
    # Until the shell that forked has exec'd tokenvend (before that, the shell's own limits).
    grep -q account "/proc/$core_pid/cmdline" 2>/dev/null || { sleep 0.05; continue; }
    core_lim=$(sed -n 's/^Max core file size *\([0-9a-z]*\) *\([0-9a-z]*\).*/\1 \2/p' "/proc/$core_pid/limits" 2>/dev/null)
    # Exec'd is not yet past main's setrlimit: read again until it shows (the process waits ~4 s).
    [ "$core_lim" = "0 0" ] && break
    sleep 0.05
done
wait $core_pid 2>/dev/null
check "tokenvend runs with core files off (RLIMIT_CORE 0 0)" $([ "$core_lim" = "0 0" ]; echo $?) "limits: $core_lim"

run help help
missing=
for w in "acs create-user" "acs issue" "acs create-user-and-token" "acs revoke" "acs delete" \
    "acs teams-exchange" quickstart "config check" version --scopes --minutes --token \
    --token-file --app-id --user-id --config --set --log-level; do
    grep -q -- "$w" "$tmp/help.out" || missing="$missing $w"
done
check "help lists every command and flag" $([ $rc -eq 0 ] && [ -z "$missing" ]; echo $?) "missing:$missing"

run acshelp acs --help
missing=
for w in create-user issue create-user-and-token revoke delete teams-exchange --scopes --minutes \
    --token --token-file --app-id --user-id; do
    grep -q -- "$w" "$tmp/acshelp.out" || missing="$missing $w"
done
check "acs --help lists every subcommand and flag" $([ $rc -eq 0 ] && [ -z "$missing" ]; echo $?) "missing:$missing"

run unknown frobnicate
check "unknown command -> exit 2" $([ $rc -eq 2 ] && json_ok "$tmp/unknown.err" 'o.error.code === "usage_error"'; echo $?) "$(detail unknown)"
run unknownflag acs create-user --frob 1
check "unknown flag -> exit 2" $([ $rc -eq 2 ] && grep -q -- '--frob' "$tmp/unknownflag.err"; echo $?) "$(detail unknownflag)"
run unknownsub acs frob
check "unknown acs subcommand -> exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail unknownsub)"
run noargs
check "no command -> usage on stderr, exit 2" $([ $rc -eq 2 ] && grep -q Usage "$tmp/noargs.err"; echo $?)

run help help
for c in serve migrate apikey account identity; do
    check "help lists $c" $([ $rc -eq 0 ] && grep -q "^ *$c" "$tmp/help.out"; echo $?) "$(detail help)"
done

run nocs acs create-user
check "missing connection string -> exit 2 with a clear message" \
    $([ $rc -eq 2 ] && grep -q "COMMUNICATION_SERVICES_CONNECTION_STRING" "$tmp/nocs.err" && [ ! -s "$tmp/nocs.out" ]; echo $?) "$(detail nocs)"
COMMUNICATION_SERVICES_CONNECTION_STRING='endpoint=https://x.example/' run badcs acs create-user
check "malformed connection string -> exit 2" $([ $rc -eq 2 ] && grep -q malformed "$tmp/badcs.err"; echo $?) "$(detail badcs)"
# Keyless mode with the identity endpoint down (IMDS at a closed loopback port): a clear error
# naming the cause, exit 1, nothing sent to ACS, no hang.
COMMUNICATION_SERVICES_ENDPOINT=https://x.example TOKENVEND_IMDS_ENDPOINT=http://127.0.0.1:9 \
    run keyless acs create-user
check "keyless mode, identity endpoint down -> exit 1 naming the Entra token" \
    $([ $rc -eq 1 ] && grep -q "no Entra token for ACS: identity endpoint" "$tmp/keyless.err" && [ ! -s "$tmp/keyless.out" ]; echo $?) "$(detail keyless)"

# --- Start the emulator --------------------------------------------------------------------------
if ! start_emulator; then
    not_ok "acs-emulator started and printed its connection string" "$(cat "$tmp/emu.err")"
    finish
fi
ok "acs-emulator started"
key=$(printf '%s' "$cs" | sed -n 's/.*accesskey=\(.*\)$/\1/p')

# --- acs commands --------------------------------------------------------------------------------
run create acs create-user
check "acs create-user -> {communicationUserId}" \
    $([ $rc -eq 0 ] && json_ok "$tmp/create.out" 'typeof o.communicationUserId === "string" && o.communicationUserId.startsWith("8:acs:") && Object.keys(o).length === 1'; echo $?) "$(detail create)"
id=$(json_get "$tmp/create.out" o.communicationUserId)

run issue acs issue "$id" --scopes chat,voip --minutes 60
check "acs issue --minutes 60 -> token, expiresOn ~1 h ahead, user" \
    $([ $rc -eq 0 ] && json_ok "$tmp/issue.out" "o.token.split('.').length === 3 && o.user.communicationUserId === '$id' && Math.abs(Date.parse(o.expiresOn) - Date.now() - 3600e3) < 300e3"; echo $?) "$(detail issue)"
token1=$(json_get "$tmp/issue.out" o.token)

run issue2 acs issue "$id" --scopes=voip
check "acs issue without --minutes -> 24 h token" \
    $([ $rc -eq 0 ] && json_ok "$tmp/issue2.out" "Math.abs(Date.parse(o.expiresOn) - Date.now() - 86400e3) < 300e3"; echo $?) "$(detail issue2)"

val=$(http POST /emulator/validate "{\"token\":\"$token1\"}")
check "issued token is valid per the emulator" $(printf '%s' "$val" | grep -q '"valid":true'; echo $?) "$val"

run cut acs create-user-and-token --scopes voip --minutes 120
check "acs create-user-and-token -> token and new user" \
    $([ $rc -eq 0 ] && json_ok "$tmp/cut.out" "o.token.length > 20 && o.user.communicationUserId.startsWith('8:acs:') && o.user.communicationUserId !== '$id' && Math.abs(Date.parse(o.expiresOn) - Date.now() - 7200e3) < 300e3"; echo $?) "$(detail cut)"

# Local validation: nothing reaches ACS.
http POST /emulator/stats/reset >/dev/null
run badscope acs issue "$id" --scopes chat,video
check "bad scope -> exit 2 usage error" \
    $([ $rc -eq 2 ] && json_ok "$tmp/badscope.err" "o.error.code === 'usage_error' && /video/.test(o.error.message)"; echo $?) "$(detail badscope)"
run m59 acs issue "$id" --scopes chat --minutes 59
run m1441 acs create-user-and-token --scopes chat --minutes 1441
m1441=$rc
run noscope acs issue "$id"
check "--minutes 59 / 1441 and missing --scopes -> exit 2" \
    $([ $m1441 -eq 2 ] && [ $rc -eq 2 ] && grep -q "60..1440" "$tmp/m59.err" && grep -q "60..1440" "$tmp/m1441.err"; echo $?) "$(detail m59; detail m1441)"
run badid acs revoke "$(printf '8:acs:x\r\nInjected: 1')"
check "acs revoke with an id holding control characters -> exit 2" \
    $([ $rc -eq 2 ] && json_ok "$tmp/badid.err" '/control characters/.test(o.error.message)' && ! grep -q Injected "$tmp/badid.err"; echo $?) "$(detail badid)"
run badid2 acs issue "$(printf '8:acs:\xff\xfe')" --scopes chat
check "acs issue with an id that is not UTF-8 -> exit 2" \
    $([ $rc -eq 2 ] && json_ok "$tmp/badid2.err" '/not valid UTF-8/.test(o.error.message)'; echo $?) "$(detail badid2)"
run flagmix acs revoke "$id" --scopes chat
check "flag that does not apply -> exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail flagmix)"
stats=$(http GET /emulator/stats)
check "usage errors never called ACS" \
    $(printf '%s' "$stats" | node -e 'const s=JSON.parse(require("fs").readFileSync(0,"utf8")); process.exit(Object.values(s.requests).every(n => n === 0) ? 0 : 1)'; echo $?) "$stats"

# Teams exchange with an unsigned JWT (the emulator checks claims, not the signature).
jwt=$(node -e '
    const b = o => Buffer.from(JSON.stringify(o)).toString("base64url");
    const now = Math.floor(Date.now() / 1000);
    process.stdout.write(b({alg: "RS256", typ: "JWT"}) + "." +
        b({oid: "11111111-2222-3333-4444-555555555555", appid: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
           tid: "t", exp: now + 3600, iat: now}) + ".c2ln");')
run teams acs teams-exchange --token "$jwt" --app-id aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee \
    --user-id 11111111-2222-3333-4444-555555555555
check "acs teams-exchange --token -> {token, expiresOn}" \
    $([ $rc -eq 0 ] && json_ok "$tmp/teams.out" "o.token.length > 20 && !isNaN(Date.parse(o.expiresOn))"; echo $?) "$(detail teams)"
printf '%s\n' "$jwt" >"$tmp/entra.jwt"
run teamsf acs teams-exchange --token-file "$tmp/entra.jwt" --app-id aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee \
    --user-id 11111111-2222-3333-4444-555555555555
check "acs teams-exchange --token-file" $([ $rc -eq 0 ] && json_ok "$tmp/teamsf.out" "o.token.length > 20"; echo $?) "$(detail teamsf)"
run teamsbad acs teams-exchange --token-file "$tmp/entra.jwt" --app-id wrong-app \
    --user-id 11111111-2222-3333-4444-555555555555
check "teams-exchange with a mismatched app id -> exit 1, status 400" \
    $([ $rc -eq 1 ] && json_ok "$tmp/teamsbad.err" "o.error.status === 400"; echo $?) "$(detail teamsbad)"
run teamsboth acs teams-exchange --token x --token-file "$tmp/entra.jwt" --app-id a --user-id u
check "teams-exchange with --token and --token-file -> exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail teamsboth)"

run revoke acs revoke "$id"
check "acs revoke -> exit 0 {communicationUserId, revoked}" \
    $([ $rc -eq 0 ] && json_ok "$tmp/revoke.out" "o.communicationUserId === '$id' && o.revoked === true"; echo $?) "$(detail revoke)"
val=$(http POST /emulator/validate "{\"token\":\"$token1\"}")
check "token issued before revoke is invalid" $(printf '%s' "$val" | grep -q '"valid":false'; echo $?) "$val"

run delete acs delete "$id"
check "acs delete -> exit 0 {communicationUserId, deleted}" \
    $([ $rc -eq 0 ] && json_ok "$tmp/delete.out" "o.communicationUserId === '$id' && o.deleted === true"; echo $?) "$(detail delete)"
run afterdel acs issue "$id" --scopes chat
check "issue after delete -> exit 1, JSON error with status 404" \
    $([ $rc -eq 1 ] && json_ok "$tmp/afterdel.err" "o.error.status === 404 && typeof o.error.message === 'string'" && [ ! -s "$tmp/afterdel.out" ]; echo $?) "$(detail afterdel)"

unknown_id="8:acs:00000000-0000-0000-0000-000000000000_00000000-0000-0000-0000-000000000000"
run revunk acs revoke "$unknown_id"
check "revoke of an unknown id -> exit 1 with JSON error on stderr" \
    $([ $rc -eq 1 ] && json_ok "$tmp/revunk.err" "o.error.status === 404 && 'acsCode' in o.error && o.error.code.length > 0"; echo $?) "$(detail revunk)"

wrongkey=$(printf '%s' "$cs" | sed 's/accesskey=.*/accesskey=d3Jvbmcta2V5LXdyb25nLWtleQ==/')
COMMUNICATION_SERVICES_CONNECTION_STRING=$wrongkey run wrongkey acs create-user
check "wrong access key -> exit 1, status 401, acsCode Denied" \
    $([ $rc -eq 1 ] && json_ok "$tmp/wrongkey.err" "o.error.status === 401 && o.error.acsCode === 'Denied'"; echo $?) "$(detail wrongkey)"

TOKENVEND_ACS_CONNECTION_STRING=$wrongkey run tvwins acs create-user
check "TOKENVEND_ACS_CONNECTION_STRING wins over COMMUNICATION_SERVICES_CONNECTION_STRING" $([ $rc -eq 1 ]; echo $?) "$(detail tvwins)"
printf '%s\n' "$cs" >"$tmp/cs.txt"
env -u COMMUNICATION_SERVICES_CONNECTION_STRING TOKENVEND_ACS_CONNECTION_STRING_FILE="$tmp/cs.txt" \
    "$TV" acs create-user >"$tmp/csfile.out" 2>"$tmp/csfile.err"
rc=$?
check "TOKENVEND_ACS_CONNECTION_STRING_FILE" $([ $rc -eq 0 ]; echo $?) "$(detail csfile)"

closed="endpoint=http://127.0.0.1:1/;accesskey=$key"
COMMUNICATION_SERVICES_CONNECTION_STRING=$closed run closed acs create-user --set acs_max_retries=0
check "unreachable ACS -> exit 1 with an upstream error" \
    $([ $rc -eq 1 ] && json_ok "$tmp/closed.err" "/upstream|network/.test(o.error.code)"; echo $?) "$(detail closed)"

# --- Secrets stay out of logs ---------------------------------------------------------------------
run debug acs issue "$(json_get "$tmp/cut.out" o.user.communicationUserId)" --scopes chat --log-level debug
tok=$(json_get "$tmp/debug.out" o.token)
check "debug logs hold neither the access key nor the token" \
    $([ $rc -eq 0 ] && [ -n "$tok" ] && ! grep -qF -- "$key" "$tmp/debug.err" && ! grep -qF -- "$tok" "$tmp/debug.err"; echo $?) "$(detail debug)"

# --- quickstart -----------------------------------------------------------------------------------
run qs quickstart
expected=(
    "Azure Communication Services - Access Tokens Quickstart"
    "Created an identity with ID: 8:acs:"
    "Issued an access token with 'voip' scope that expires at "
    "Issued an access token with 'voip' scope and custom expiration that expires at "
    "Created an identity with ID: 8:acs:.* and issued an access token with 'voip' scope that expires at "
    "Refreshed an access token with ID: 8:acs:"
    "Successfully revoked all access tokens for identity with ID: 8:acs:"
    "Deleted the identity with ID: 8:acs:"
)
line=0
order_ok=0
for e in "${expected[@]}"; do
    n=$(grep -n -- "^$e" "$tmp/qs.out" | head -n 1 | cut -d: -f1)
    if [ -z "$n" ] || [ "$n" -le "$line" ]; then
        order_ok=1
        echo "# quickstart line missing or out of order: $e"
        break
    fi
    line=$n
done
ntok=$(grep -cE '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' "$tmp/qs.out")
check "quickstart prints the quickstart's sequence in order and exits 0" \
    $([ $rc -eq 0 ] && [ $order_ok -eq 0 ] && [ "$ntok" -eq 4 ]; echo $?) "$(detail qs)"

# A failing step: the emulator fails every issue call.
http PUT /emulator/faults '{"error_rate":1,"error_status":500,"ops":["issue"]}' >/dev/null
run qsfail quickstart --set acs_max_retries=0
http DELETE /emulator/faults >/dev/null
check "quickstart with a failing step -> exit 1, names the step" \
    $([ $rc -eq 1 ] && grep -q "step 2" "$tmp/qsfail.err" && json_ok "$tmp/qsfail.err" "o.error.status === 500"; echo $?) "$(detail qsfail)"

# --- config check ---------------------------------------------------------------------------------
run cfg config check
check "config check exits 0 and redacts the access key" \
    $([ $rc -eq 0 ] && grep -q '^acs_connection_string = <redacted>  # env COMMUNICATION_SERVICES_CONNECTION_STRING$' "$tmp/cfg.out" && ! grep -qF -- "$key" "$tmp/cfg.out" "$tmp/cfg.err"; echo $?) "$(detail cfg)"
# Every setting config check knows is documented in the example file, and vice versa.
undocumented=$(sed -n 's/^\([a-z_]*\) = .*  # .*/\1/p' "$tmp/cfg.out" | while read -r name; do
    grep -q "^# $name = " config/tokenvend.conf || echo "$name"; done)
n=$(grep -c ' = .*  # ' "$tmp/cfg.out")
documented=$(grep '^# [a-z_]* = ' config/tokenvend.conf | grep -vc '^# [a-z_]*_file = ')
check "config check's $n settings are all in config/tokenvend.conf" \
    $([ -z "$undocumented" ] && [ "$n" -gt 20 ] && [ "$documented" -eq "$n" ]; echo $?) "undocumented: $undocumented"
# The example file lists the api-versions and scopes the binary knows (core/acsnames.h): the
# binary's own lists come from its refusals of an unknown value.
run cfgver config check --set acs_api_version=none
bin_vers=$(sed -n 's/.*is not one of \([^"]*\)".*/\1/p' "$tmp/cfgver.err")
conf_vers=$(sed -n 's/^# Identity API version: \(.*\)\.$/\1/p' config/tokenvend.conf | sed 's/ or /, /')
run cfgscope config check --set allowed_scopes=none
bin_scopes=$(sed -n 's/.*(known: \([^)]*\)).*/\1/p' "$tmp/cfgscope.err")
conf_scopes=$(sed -n 's/^# ACS scopes callers may ask for; known: \(.*\)\.$/\1/p' config/tokenvend.conf)
check "config/tokenvend.conf lists the api-versions and scopes the binary accepts" \
    $([ -n "$bin_vers" ] && [ "$bin_vers" = "$conf_vers" ] && [ -n "$bin_scopes" ] && [ "$bin_scopes" = "$conf_scopes" ]; echo $?) \
    "binary: $bin_vers / $bin_scopes; file: $conf_vers / $conf_scopes"
env -u COMMUNICATION_SERVICES_CONNECTION_STRING "$TV" config check >"$tmp/cfg2.out" 2>&1
# Keyless mode: config check names the credential the environment picks, never its secret, and
# refuses a malformed variable.
env -u COMMUNICATION_SERVICES_CONNECTION_STRING COMMUNICATION_SERVICES_ENDPOINT=https://r.communication.azure.com \
    AZURE_TENANT_ID=t1 AZURE_CLIENT_ID=c1 AZURE_CLIENT_SECRET=cli-s3cr3t "$TV" config check >"$tmp/cfgkl.out" 2>&1
check "config check in keyless mode names the credential, not its secret" \
    $(grep -q '^# keyless mode (Microsoft Entra ID): credential=client_secret POST https://login.microsoftonline.com/t1/oauth2/v2.0/token .*client_secret=\*\*\*' "$tmp/cfgkl.out" && ! grep -q cli-s3cr3t "$tmp/cfgkl.out"; echo $?) "$(cat "$tmp/cfgkl.out")"
env -u COMMUNICATION_SERVICES_CONNECTION_STRING COMMUNICATION_SERVICES_ENDPOINT=https://r.communication.azure.com \
    AZURE_TENANT_ID=a/b AZURE_CLIENT_ID=c1 AZURE_CLIENT_SECRET=cli-s3cr3t "$TV" config check >"$tmp/cfgkl2.out" 2>&1
klrc=$?
check "config check in keyless mode refuses a malformed AZURE_TENANT_ID (exit 2)" \
    $([ $klrc -eq 2 ] && grep -q AZURE_TENANT_ID "$tmp/cfgkl2.out" && ! grep -q cli-s3cr3t "$tmp/cfgkl2.out"; echo $?) "$(cat "$tmp/cfgkl2.out")"
# The bearer token travels on the endpoint: plain http to a non-loopback host, or an endpoint with
# a path, is refused by config check and by the acs commands, before any token is fetched.
for ep in http://r.communication.azure.com 'https://r.communication.azure.com/some/path?q=1'; do
    env -u COMMUNICATION_SERVICES_CONNECTION_STRING COMMUNICATION_SERVICES_ENDPOINT="$ep" \
        AZURE_TENANT_ID=t1 AZURE_CLIENT_ID=c1 AZURE_CLIENT_SECRET=cli-s3cr3t "$TV" config check >"$tmp/cfgkl3.out" 2>&1
    klrc=$?
    check "config check in keyless mode refuses the endpoint $ep (exit 2)" \
        $([ $klrc -eq 2 ] && grep -q "COMMUNICATION_SERVICES_ENDPOINT): malformed" "$tmp/cfgkl3.out"; echo $?) "$(cat "$tmp/cfgkl3.out")"
    env -u COMMUNICATION_SERVICES_CONNECTION_STRING COMMUNICATION_SERVICES_ENDPOINT="$ep" \
        TOKENVEND_IMDS_ENDPOINT=http://127.0.0.1:9 TOKENVEND_LOG_LEVEL=debug "$TV" acs create-user >"$tmp/klacs.out" 2>&1
    klrc=$?
    check "acs create-user in keyless mode refuses the endpoint $ep before fetching a token" \
        $([ $klrc -eq 2 ] && grep -q "COMMUNICATION_SERVICES_ENDPOINT): malformed" "$tmp/klacs.out" && ! grep -qi "entra\|identity endpoint" "$tmp/klacs.out"; echo $?) "$(cat "$tmp/klacs.out")"
done
# (Keyless mode: the connection string is unset, and config check accepts the configuration.)
check "config check shows an unset secret as <unset>" $(grep -q '^acs_connection_string = <unset>' "$tmp/cfgkl.out"; echo $?) "$(cat "$tmp/cfgkl.out")"
check "config check without any ACS credential -> exit 2 naming the variables, as serve" \
    $(grep -q 'no ACS connection string: set COMMUNICATION_SERVICES_CONNECTION_STRING' "$tmp/cfg2.out" && ! grep -q '^acs_connection_string = ' "$tmp/cfg2.out"; echo $?) "$(cat "$tmp/cfg2.out")"
run cfgbad config check --set token_minutes=59
check "config check with a bad value -> exit 2 naming setting and source" \
    $([ $rc -eq 2 ] && grep -q "token_minutes" "$tmp/cfgbad.err" && grep -q -- "--set" "$tmp/cfgbad.err"; echo $?) "$(detail cfgbad)"
printf 'token_minutes = 120\nfrobnicate = 1\n' >"$tmp/bad.conf"
run cfgfile config check --config "$tmp/bad.conf"
check "config check: unknown key in file -> exit 2 with file:line" \
    $([ $rc -eq 2 ] && grep -qF "$tmp/bad.conf:2" "$tmp/cfgfile.err"; echo $?) "$(detail cfgfile)"
printf 'token_minutes = 120\n' >"$tmp/good.conf"
TOKENVEND_DB=env.db run cfgprec config check --config "$tmp/good.conf" --set public_addr=127.0.0.1:9999
check "config check shows each value's source" \
    $([ $rc -eq 0 ] && grep -qF "token_minutes = 120  # $tmp/good.conf:1" "$tmp/cfgprec.out" && grep -q '^db = env.db  # env TOKENVEND_DB$' "$tmp/cfgprec.out" && grep -q '^public_addr = 127.0.0.1:9999  # flag --set$' "$tmp/cfgprec.out"; echo $?) "$(detail cfgprec)"
# A config file holding a secret inline is checked like a *_file: readable by others, a warning
# naming it and its mode (never the secret); private, or holding no secret, no warning.
printf 'acs_connection_string = endpoint=https://x.example/;accesskey=%s\n' "$key" >"$tmp/sec.conf"
chmod 644 "$tmp/sec.conf"
run cfgsec config check --config "$tmp/sec.conf"
check "config check: a 0644 config file holding a secret -> warning naming it and its mode" \
    $([ $rc -eq 0 ] && grep -qF "config file holding secrets $tmp/sec.conf" "$tmp/cfgsec.err" && grep -q "mode 0644" "$tmp/cfgsec.err" && ! grep -qF -- "$key" "$tmp/cfgsec.out" "$tmp/cfgsec.err"; echo $?) "$(detail cfgsec)"
chmod 600 "$tmp/sec.conf"
# (Local accounts on in the no-warning cases: with no way for app users to log in, config check
# warns about that too, as serve does.)
run cfgsec6 config check --config "$tmp/sec.conf" --set local_accounts=on
check "config check: a 0600 config file holding a secret -> no warning" \
    $([ $rc -eq 0 ] && ! grep -q '"warn"' "$tmp/cfgsec6.err"; echo $?) "$(detail cfgsec6)"
chmod 644 "$tmp/good.conf"
run cfgnosec config check --config "$tmp/good.conf" --set local_accounts=on
check "config check: a 0644 config file without secrets -> no warning" \
    $([ $rc -eq 0 ] && ! grep -q '"warn"' "$tmp/cfgnosec.err"; echo $?) "$(detail cfgnosec)"
run cfgmiss config check --config "$tmp/does-not-exist.conf"
check "config check --config missing file -> exit 2" $([ $rc -eq 2 ]; echo $?) "$(detail cfgmiss)"
# OIDC keys must not come over plain http from another host: anyone on the path could swap them.
for url in http://idp.example/ http://10.0.0.7:8080/realms/x http://127.0.0.1@idp.example/; do
    TOKENVEND_OIDC_ISSUER=$url TOKENVEND_OIDC_AUDIENCE=api run cfghttp config check
    check "config check: oidc_issuer $url -> exit 2 asking for https" \
        $([ $rc -eq 2 ] && grep -q "oidc_issuer" "$tmp/cfghttp.err" && grep -q "https://" "$tmp/cfghttp.err"; echo $?) "$(detail cfghttp)"
done
run cfghttpj config check --set oidc_issuer=https://idp.example/ --set oidc_audience=api \
    --set oidc_jwks_url=http://idp.example/keys
check "config check: oidc_jwks_url over http to another host -> exit 2" \
    $([ $rc -eq 2 ] && grep -q "oidc_jwks_url" "$tmp/cfghttpj.err"; echo $?) "$(detail cfghttpj)"
for url in https://idp.example/ http://127.0.0.1:9/ http://localhost:8080/realms/x "http://[::1]:9/"; do
    run cfghttpok config check --set "oidc_issuer=$url" --set oidc_audience=api
    check "config check: oidc_issuer $url is accepted" $([ $rc -eq 0 ]; echo $?) "$(detail cfghttpok)"
done
run cfginsec config check --set oidc_issuer=http://idp.example/ --set oidc_audience=api \
    --set oidc_allow_insecure_http=on
check "config check: oidc_allow_insecure_http=on accepts http:// to another host" \
    $([ $rc -eq 0 ] && grep -q '^oidc_allow_insecure_http = on  # flag --set$' "$tmp/cfginsec.out"; echo $?) "$(detail cfginsec)"
# (Bounded: a serve that wrongly starts is stopped after a while and fails the check.)
TOKENVEND_OIDC_ISSUER=http://idp.example/ TOKENVEND_OIDC_AUDIENCE=api TOKENVEND_DB="$tmp/https.db" \
    timeout 30 "$TV" serve --set public_addr=127.0.0.1:0 --set internal_addr=127.0.0.1:0 \
    >"$tmp/servehttp.out" 2>"$tmp/servehttp.err"
rc=$?
check "serve with an http:// issuer on another host -> exit 2 before listening" \
    $([ $rc -eq 2 ] && grep -q "oidc_issuer" "$tmp/servehttp.err" && ! grep -q '"listening"' "$tmp/servehttp.err"; echo $?) "$(detail servehttp)"

COMMUNICATION_SERVICES_CONNECTION_STRING='endpoint=https://x/;nokey=1' run cfgcs config check
check "config check with a malformed connection string -> exit 2, no secret shown" \
    $([ $rc -eq 2 ] && grep -q malformed "$tmp/cfgcs.err" && ! grep -q nokey "$tmp/cfgcs.err"; echo $?) "$(detail cfgcs)"

# A PostgreSQL URI in TOKENVEND_DB selects the PostgreSQL store. Nothing listens on port 9: one
# line naming the server as unreachable, exit 1 (runtime), no password shown, no SQLite file made
# (a URI used to become a SQLite file under a directory "postgresql:", its password printed).
tv_abs=$(realpath "$TV")
(cd "$tmp" && TOKENVEND_DB='postgresql://tv:Sekr1t@127.0.0.1:9/tv' TOKENVEND_DB_CONNECT_TIMEOUT_MS=2000 "$tv_abs" migrate) \
    >"$tmp/dburi.out" 2>"$tmp/dburi.err"
rc=$?
check "migrate with an unreachable PostgreSQL URI -> exit 1, one line, nothing created, no password shown" \
    $([ $rc -eq 1 ] && grep -q "PostgreSQL at 127.0.0.1:9 is unreachable" "$tmp/dburi.err" &&
        [ "$(wc -l <"$tmp/dburi.err")" -eq 1 ] &&
        ! grep -q Sekr1t "$tmp/dburi.out" "$tmp/dburi.err" && [ ! -e "$tmp/postgresql:" ]; echo $?) "$(detail dburi)"
(cd "$tmp" && TOKENVEND_DB='postgresql://tv:Sekr1t@127.0.0.1:99999/tv' "$tv_abs" config check) \
    >"$tmp/dburi2.out" 2>"$tmp/dburi2.err"
rc=$?
check "config check with a malformed PostgreSQL URI -> exit 2, one line, no password shown" \
    $([ $rc -eq 2 ] && grep -q "not a valid PostgreSQL URI" "$tmp/dburi2.err" &&
        [ "$(wc -l <"$tmp/dburi2.err")" -eq 1 ] &&
        ! grep -q Sekr1t "$tmp/dburi2.out" "$tmp/dburi2.err"; echo $?) "$(detail dburi2)"
(cd "$tmp" && TOKENVEND_DB='postgresql://tv:Sekr1t@127.0.0.1:5432/tv' "$tv_abs" config check) \
    >"$tmp/dburi3.out" 2>"$tmp/dburi3.err"
rc=$?
check "config check with a PostgreSQL URI -> exit 0, the URI shown with its password as ***" \
    $([ $rc -eq 0 ] && grep -q "^db = postgresql://tv:\*\*\*@127.0.0.1:5432/tv  # env TOKENVEND_DB" "$tmp/dburi3.out" &&
        ! grep -q Sekr1t "$tmp/dburi3.out" "$tmp/dburi3.err"; echo $?) "$(detail dburi3)"

finish
