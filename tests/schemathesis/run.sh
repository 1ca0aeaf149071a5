#!/usr/bin/env bash
# schemathesis over the served /openapi.json, against the built binary with a
# fresh data directory and the rate limit off; bounded (40 examples an
# operation, about a minute on two cores). Exits non-zero on any failure:
# a 5xx, an answer its schema does not describe, an undocumented status or
# content type, a request the schema forbids accepted, or one it allows
# refused (except where schemathesis.toml says why not).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
venv="$here/.venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv" 2>/dev/null || {
    as_root=""; [ "$(id -u)" -eq 0 ] || as_root="sudo"
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y python3-venv
    /usr/bin/python3 -m venv "$venv"
  }
  # hypothesis pinned below its lambda-source parser, which fails on
  # schemathesis's own code under Python 3.11 ("AST constructor recursion
  # depth mismatch").
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==4.32.5" "hypothesis==6.135.0"
fi

work="$(mktemp -d)"
token="schemathesis-operator-token-$RANDOM$RANDOM"
LATCH_OPERATOR_TOKEN="$token" LATCH_AUTH_RATE_LIMIT_PER_MINUTE=0 LATCH_LOG=warn \
  "$root/target/debug/latch" serve --listen 127.0.0.1:0 --data-dir "$work/data" --master-key-file "$work/master.key" \
  > "$work/banner" 2> "$work/log" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
# The banner's first line names the bound address (the kernel picked the port).
for _ in $(seq 300); do
  addr="$(head -1 "$work/banner" 2>/dev/null | awk '{print $NF}')"
  [ -n "$addr" ] && break
  kill -0 $server 2>/dev/null || { cat "$work/log"; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "latch did not start"; exit 1; }

# From the scratch directory: schemathesis and hypothesis keep their caches in
# the working directory, and a run must leave nothing in the checkout.
cd "$work"
PYTHONPATH="$here" SCHEMATHESIS_HOOKS=hooks \
  "$venv/bin/schemathesis" --no-color --config-file "$here/schemathesis.toml" run "http://$addr/openapi.json" \
  --max-examples 40 --phases examples,coverage,fuzzing --seed 1 \
  -H "Authorization: Bearer $token"
