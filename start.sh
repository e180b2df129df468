#!/usr/bin/env bash
# Starts the gateway's data plane on http://127.0.0.1:8080 with a local
# snapshot file (./data/snapshot.json) holding one generated API key.
# Bedrock is reached with the standard AWS environment: AWS_REGION plus
# AWS_PROFILE or access keys (or AWS_ENDPOINT_URL_BEDROCK_RUNTIME for a double).
set -euo pipefail
cd "$(dirname "$0")"

data="${CCAG_DATA_DIR:-./data}"
mkdir -p "$data"
umask 077
if [ ! -s "$data/dev-key" ]; then
  key="sk-ccag-$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)"
  printf '%s' "$key" > "$data/dev-key"
  echo "Generated an API key (stored in $data/dev-key; shown only now):"
  echo "  $key"
fi
hash=$(sha256sum < "$data/dev-key" | cut -d' ' -f1)
cat > "$data/snapshot.json" <<JSON
{"version": "1", "keys": [{"id": "dev", "name": "dev", "sha256": "$hash", "status": "KEY_STATUS_ACTIVE"}]}
JSON

export CCAG_DATAPLANE_CONFIG="$data/snapshot.json"
export CCAG_DATAPLANE_ADDR="${CCAG_DATAPLANE_ADDR:-127.0.0.1:8080}"
echo "Point Claude Code at it with:"
echo "  export ANTHROPIC_BASE_URL=http://$CCAG_DATAPLANE_ADDR ANTHROPIC_API_KEY=\$(cat $data/dev-key)"
exec cargo run --release --quiet -p ccag-dataplane
