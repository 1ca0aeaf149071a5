#!/usr/bin/env bash
# Size of the npm package's .wasm (EdDSA, ES256, RS256 and HS256 inside), raw and gzipped.
# With --check it fails above the budget (SPEC §7: 80 KB gzipped). Needs verifier-wasm/build.sh first.
set -euo pipefail
wasm="$(cd "$(dirname "$0")/.." && pwd)/verifier-wasm/pkg/latch_verifier_bg.wasm"
budget=$((80 * 1000))
[ -f "$wasm" ] || { echo "missing $wasm: run verifier-wasm/build.sh first"; exit 1; }
raw=$(wc -c < "$wasm")
gzipped=$(gzip -9 -c "$wasm" | wc -c)
printf '| file | raw bytes | gzip -9 bytes | budget |\n|---|---|---|---|\n'
printf '| latch_verifier_bg.wasm | %d | %d | %d |\n' "$raw" "$gzipped" "$budget"
if [ "${1:-}" = "--check" ] && [ "$gzipped" -gt "$budget" ]; then
  echo "the wasm is $gzipped bytes gzipped, over the $budget-byte budget"
  exit 1
fi
