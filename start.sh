#!/usr/bin/env bash
# Starts the whole gateway on this machine: the control plane (embedded
# SQLite under ./data, admin API on 127.0.0.1:8091) and one data plane
# connected to it (Anthropic API on http://127.0.0.1:8080). Ctrl-C stops both.
# Bedrock is reached with the standard AWS environment: AWS_REGION plus
# AWS_PROFILE or access keys (AWS_ENDPOINT_URL_BEDROCK_RUNTIME for a double).
set -euo pipefail
cd "$(dirname "$0")"

export CCAG_DATA_DIR="${CCAG_DATA_DIR:-$PWD/data}"
mkdir -p "$CCAG_DATA_DIR"
# The portal (served by the control plane at /portal/, embedded in its binary).
if [ ! -f portal/dist/index.html ] || [ -n "$(find portal/src portal/package-lock.json proto/ccag -newer portal/dist/index.html -print -quit 2>/dev/null)" ]; then
  command -v npm >/dev/null || { echo "start.sh: npm (Node.js) is needed to build the portal" >&2; exit 1; }
  [ -d portal/node_modules ] || npm ci --prefix portal --no-fund --no-audit --silent
  npm run --prefix portal --silent build >/dev/null
fi
cargo build --release --quiet -p ccag-controlplane -p ccag-dataplane
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"

pids=()
cleanup() {
  trap - INT TERM EXIT
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

grpc="${CCAG_GRPC_ADDR:-127.0.0.1:8091}"
gateway="http://${CCAG_DATAPLANE_ADDR:-127.0.0.1:8080}"
# The data plane is the one URL developers and Claude Code use: it passes
# sign-in and onboarding through to the control plane's HTTP address.
CCAG_PUBLIC_URL="${CCAG_PUBLIC_URL:-$gateway}" "$bin/ccag-controlplane" &
pids+=($!)
for _ in $(seq 1 100); do
  [ -s "$CCAG_DATA_DIR/dataplane-token" ] && break
  sleep 0.1
done

CCAG_CONTROLPLANE_URL="http://$grpc" \
CCAG_DATAPLANE_TOKEN_FILE="$CCAG_DATA_DIR/dataplane-token" \
CCAG_DATAPLANE_STATE_DIR="$CCAG_DATA_DIR/dataplane" \
CCAG_CONTROLPLANE_HTTP_URL="${CCAG_CONTROLPLANE_HTTP_URL:-http://${CCAG_HTTP_ADDR:-127.0.0.1:8081}}" \
  "$bin/ccag-dataplane" &
pids+=($!)

sleep 1
cat <<INFO

CCAG is running.
  Portal:  $gateway/portal/
  Admin:   user '${ADMIN_USERNAME:-admin}', password from ADMIN_PASSWORD or the line
           "generated password" printed above on the very first start.
  CLI:     $bin/ccag login && $bin/ccag keys create --name my-laptop
  Clients: export ANTHROPIC_BASE_URL=$gateway ANTHROPIC_API_KEY=<the key>
  Onboard: $bin/ccag keys setup-token --user EMAIL prints a one-time command for a developer;
           with an identity provider (docs/identity.md): curl -fsSL $gateway/setup | sh
Ctrl-C stops both services.
INFO
wait -n "${pids[@]}"
