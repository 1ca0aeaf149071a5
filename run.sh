#!/usr/bin/env bash
# Runs latch with embedded defaults (data in ./latch-data, listening on
# 127.0.0.1:8080, the demo tenant and the web demo at /demo). The demo loads
# the npm verifier package, which the binary embeds: it is built first when
# missing or older than its sources. Extra arguments go to `latch serve`.
set -euo pipefail
cd "$(dirname "$0")"
wasm=verifier-wasm/pkg/latch_verifier_bg.wasm
if [ ! -f "$wasm" ] || [ -n "$(find shared/src verifier-wasm/src verifier-wasm/js -type f -newer "$wasm" | head -n 1)" ]; then
  ./verifier-wasm/build.sh
fi
exec cargo run --locked -p latch-server -- serve "$@"
