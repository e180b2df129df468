#!/bin/sh
# Connects Claude Code on this machine to the CCAG gateway at @URL@.
# Served by the gateway at @URL@/setup; read it before you run it:
#   curl -fsSL '@URL@/setup' | sh
# It installs Claude Code if it is missing, signs you in, and sets in
# @SETTINGS_DESC@ only the gateway's address and a credential helper,
# keeping every other setting you have. Running it again is harmless.
set -eu

CCAG_URL='@URL@'
SCOPE='@SCOPE@'
SETUP_TOKEN='@TOKEN@'
# Claude Code re-runs the helper this often; gateway tokens live longer.
HELPER_TTL_MS='@HELPER_TTL_MS@'
# 1 when the gateway has web search turned off: Claude Code is told not to offer it.
DENY_WEBSEARCH='@DENY_WEBSEARCH@'

say() { printf 'ccag setup: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
need() { command -v "$1" >/dev/null 2>&1; }
# A string or number field of the gateway's compact JSON answers.
field() { printf '%s' "$1" | sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p"; }
number() { printf '%s' "$1" | sed -n "s/.*\"$2\":\([0-9][0-9]*\).*/\1/p"; }

need curl || die "curl is needed"

# 1. Claude Code.
if ! need claude; then
  if need npm; then
    say "installing Claude Code: npm install -g @anthropic-ai/claude-code"
    npm install -g @anthropic-ai/claude-code >&2 || die "the install failed; install Claude Code yourself and run this again"
  else
    say "installing Claude Code: curl -fsSL https://claude.ai/install.sh | bash"
    curl -fsSL https://claude.ai/install.sh | bash >&2 || die "the install failed; install Claude Code yourself and run this again"
  fi
fi

# 2. Where things go. Credentials stay in your home directory, one set per
# gateway, readable by you only; a project's settings only point at them.
if [ "$SCOPE" = project ]; then SETTINGS_DIR=./.claude; else SETTINGS_DIR="$HOME/.claude"; fi
SETTINGS="$SETTINGS_DIR/settings.json"
SLUG=$(printf '%s' "$CCAG_URL" | sed 's#^[a-z]*://##; s#[^A-Za-z0-9.-]#_#g')
CRED="$HOME/.claude/ccag/$SLUG"
mkdir -p "$SETTINGS_DIR" "$CRED"
chmod 700 "$HOME/.claude/ccag" "$CRED"
umask 077
HELPER="$CRED/credential-helper.sh"

# 3. Sign in.
if [ -n "$SETUP_TOKEN" ]; then
  resp=$(curl -fsS --max-time 30 -X POST --data-urlencode "token=$SETUP_TOKEN" "$CCAG_URL/setup/credential") \
    || die "the setup token was refused (it works once, for 10 minutes); ask for a new one"
  key=$(field "$resp" key)
  [ -n "$key" ] || die "the gateway sent no key"
  printf '%s\n' "$key" > "$CRED/key"
  rm -f "$CRED/refresh" "$CRED/access"
  cat > "$HELPER" <<HELPER_EOF
#!/bin/sh
# Prints this machine's gateway key for Claude Code (its apiKeyHelper).
exec cat '$CRED/key'
HELPER_EOF
else
  resp=$(curl -fsS --max-time 30 -X POST -d client_id=ccag-setup "$CCAG_URL/oauth/device_authorization") \
    || die "the gateway at $CCAG_URL cannot be reached"
  device=$(field "$resp" device_code)
  code=$(field "$resp" user_code)
  uri=$(field "$resp" verification_uri_complete)
  interval=$(number "$resp" interval)
  [ -n "$device" ] && [ -n "$code" ] || die "the gateway's answer is not a device sign-in"
  say "to sign in, open $uri"
  say "and check that it shows the code $code before you approve."
  if [ "$(uname -s)" = Darwin ] && need open; then open "$uri" >/dev/null 2>&1 || true
  elif [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && need xdg-open; then xdg-open "$uri" >/dev/null 2>&1 || true
  fi
  while :; do
    sleep "${interval:-5}"
    r=$(curl -sS --max-time 30 -X POST -d grant_type=urn:ietf:params:oauth:grant-type:device_code \
      --data-urlencode "device_code=$device" "$CCAG_URL/oauth/token") || r=''
    case "$r" in
      *'"access_token"'*) break ;;
      *'"slow_down"'*) interval=$((${interval:-5} + 5)) ;;
      *'"authorization_pending"'* | '') ;;
      *) die "sign-in failed: $(field "$r" error_description)" ;;
    esac
  done
  printf '%s\n' "$(field "$r" refresh_token)" > "$CRED/refresh"
  printf '%s\n%s\n' "$(($(date +%s) + $(number "$r" expires_in)))" "$(field "$r" access_token)" > "$CRED/access"
  rm -f "$CRED/key"
  cat > "$HELPER" <<'HELPER_EOF'
#!/bin/sh
# Prints a gateway access token for Claude Code (its apiKeyHelper), renewing
# it with the refresh token when it is about to expire. Written by the CCAG
# setup script; stdout carries the token and nothing else.
set -eu
HELPER_EOF
  cat >> "$HELPER" <<HELPER_EOF
URL='$CCAG_URL'
DIR='$CRED'
HELPER_EOF
  cat >> "$HELPER" <<'HELPER_EOF'
field() { printf '%s' "$1" | sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p"; }
number() { printf '%s' "$1" | sed -n "s/.*\"$2\":\([0-9][0-9]*\).*/\1/p"; }
fresh() {
  [ -f "$DIR/access" ] || return 1
  exp=$(sed -n 1p "$DIR/access")
  [ "$exp" -gt $(($(date +%s) + 120)) ] 2>/dev/null || return 1
  sed -n 2p "$DIR/access"
}
fresh && exit 0
# The refresh token works once: one renewal at a time.
i=0
while ! mkdir "$DIR/lock" 2>/dev/null; do
  i=$((i + 1))
  if [ "$i" -gt 30 ]; then rmdir "$DIR/lock" 2>/dev/null || true; fi
  sleep 1
done
trap 'rmdir "$DIR/lock" 2>/dev/null || true' EXIT
fresh && exit 0
umask 077
r=$(curl -fsS --max-time 20 -X POST -d grant_type=refresh_token --data-urlencode "refresh_token=$(cat "$DIR/refresh")" \
  "$URL/oauth/token") || {
  echo "ccag: the gateway sign-in has ended; sign in again with: curl -fsSL '$URL/setup' | sh" >&2
  exit 1
}
printf '%s\n' "$(field "$r" refresh_token)" > "$DIR/refresh.tmp" && mv "$DIR/refresh.tmp" "$DIR/refresh"
printf '%s\n%s\n' "$(($(date +%s) + $(number "$r" expires_in)))" "$(field "$r" access_token)" > "$DIR/access.tmp"
mv "$DIR/access.tmp" "$DIR/access"
sed -n 2p "$DIR/access"
HELPER_EOF
fi
chmod 700 "$HELPER"

# 4. Settings: the gateway's address and the helper in, conflicting
# Bedrock and credential settings out, everything else kept.
MERGE_JS='
const fs = require("fs");
const [file, url, helper, ttl, deny] = process.argv.slice(1);
let s = {};
try { s = JSON.parse(fs.readFileSync(file, "utf8")); }
catch (e) { if (e.code !== "ENOENT") { console.error("ccag setup: " + file + " is not valid JSON; fix it and run this again"); process.exit(1); } }
if (typeof s !== "object" || s === null || Array.isArray(s)) { console.error("ccag setup: " + file + " is not a JSON object"); process.exit(1); }
const env = (typeof s.env === "object" && s.env !== null) ? s.env : {};
for (const k of ["CLAUDE_CODE_USE_BEDROCK", "ANTHROPIC_BEDROCK_BASE_URL", "CLAUDE_CODE_SKIP_BEDROCK_AUTH",
                 "AWS_BEARER_TOKEN_BEDROCK", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"]) delete env[k];
env.ANTHROPIC_BASE_URL = url;
env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS = ttl;
s.env = env;
s.apiKeyHelper = helper;
if (deny === "1") {
  const p = (typeof s.permissions === "object" && s.permissions !== null) ? s.permissions : {};
  const d = Array.isArray(p.deny) ? p.deny : [];
  if (!d.includes("WebSearch")) d.push("WebSearch");
  p.deny = d;
  s.permissions = p;
}
fs.writeFileSync(file + ".ccag-tmp", JSON.stringify(s, null, 2) + "\n");
fs.renameSync(file + ".ccag-tmp", file);
'
MERGE_PY='
import json, os, sys
file, url, helper, ttl, deny = sys.argv[1:6]
try:
    with open(file) as f: s = json.load(f)
except FileNotFoundError: s = {}
except ValueError: sys.exit("ccag setup: " + file + " is not valid JSON; fix it and run this again")
if not isinstance(s, dict): sys.exit("ccag setup: " + file + " is not a JSON object")
env = s.get("env") if isinstance(s.get("env"), dict) else {}
for k in ["CLAUDE_CODE_USE_BEDROCK", "ANTHROPIC_BEDROCK_BASE_URL", "CLAUDE_CODE_SKIP_BEDROCK_AUTH",
          "AWS_BEARER_TOKEN_BEDROCK", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"]: env.pop(k, None)
env["ANTHROPIC_BASE_URL"] = url
env["CLAUDE_CODE_API_KEY_HELPER_TTL_MS"] = ttl
s["env"] = env
s["apiKeyHelper"] = helper
if deny == "1":
    p = s.get("permissions") if isinstance(s.get("permissions"), dict) else {}
    d = p.get("deny") if isinstance(p.get("deny"), list) else []
    if "WebSearch" not in d: d.append("WebSearch")
    p["deny"] = d
    s["permissions"] = p
with open(file + ".ccag-tmp", "w") as f: json.dump(s, f, indent=2); f.write("\n")
os.replace(file + ".ccag-tmp", file)
'
HELPER_CMD="sh '$HELPER'"
[ -f "$SETTINGS" ] && [ ! -f "$SETTINGS.before-ccag" ] && cp "$SETTINGS" "$SETTINGS.before-ccag"
if need node; then
  node -e "$MERGE_JS" "$SETTINGS" "$CCAG_URL" "$HELPER_CMD" "$HELPER_TTL_MS" "$DENY_WEBSEARCH"
elif need python3; then
  python3 -c "$MERGE_PY" "$SETTINGS" "$CCAG_URL" "$HELPER_CMD" "$HELPER_TTL_MS" "$DENY_WEBSEARCH"
elif need jq; then
  [ -f "$SETTINGS" ] || printf '{}\n' > "$SETTINGS"
  jq --arg url "$CCAG_URL" --arg helper "$HELPER_CMD" --arg ttl "$HELPER_TTL_MS" --arg deny "$DENY_WEBSEARCH" \
    '(.env // {}) as $e | .env = ($e | del(.CLAUDE_CODE_USE_BEDROCK, .ANTHROPIC_BEDROCK_BASE_URL, .CLAUDE_CODE_SKIP_BEDROCK_AUTH, .AWS_BEARER_TOKEN_BEDROCK, .ANTHROPIC_API_KEY, .ANTHROPIC_AUTH_TOKEN) + {ANTHROPIC_BASE_URL: $url, CLAUDE_CODE_API_KEY_HELPER_TTL_MS: $ttl}) | .apiKeyHelper = $helper | if $deny == "1" then .permissions = ((.permissions // {}) | .deny = (((.deny // []) - ["WebSearch"]) + ["WebSearch"])) else . end' \
    "$SETTINGS" > "$SETTINGS.ccag-tmp" && mv "$SETTINGS.ccag-tmp" "$SETTINGS"
elif [ ! -f "$SETTINGS" ]; then
  deny_json=''
  [ "$DENY_WEBSEARCH" = 1 ] && deny_json=',\n  "permissions": {"deny": ["WebSearch"]}'
  printf '{\n  "env": {"ANTHROPIC_BASE_URL": "%s", "CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "%s"},\n  "apiKeyHelper": "%s"'"$deny_json"'\n}\n' \
    "$CCAG_URL" "$HELPER_TTL_MS" "$HELPER_CMD" > "$SETTINGS"
else
  die "to change $SETTINGS without losing your settings this needs node, python3 or jq; set env.ANTHROPIC_BASE_URL to $CCAG_URL and apiKeyHelper to: $HELPER_CMD"
fi
chmod 600 "$SETTINGS" 2>/dev/null || true

# 5. What would still override the gateway.
for v in ANTHROPIC_API_KEY ANTHROPIC_AUTH_TOKEN ANTHROPIC_BASE_URL CLAUDE_CODE_USE_BEDROCK ANTHROPIC_BEDROCK_BASE_URL AWS_BEARER_TOKEN_BEDROCK; do
  eval "val=\${$v:-}"
  if [ -n "$val" ] && { [ "$v" != ANTHROPIC_BASE_URL ] || [ "$val" != "$CCAG_URL" ]; }; then
    say "warning: $v is set in your shell and overrides these settings; unset it (and remove it from your shell profile)"
  fi
done
say "done: Claude Code now goes through $CCAG_URL ($SETTINGS). Start it with: claude"
