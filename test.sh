#!/usr/bin/env bash
# Runs every test latch has: Rust (rules, server, store, HTTP integration),
# the wasm build and its size budget, and the npm package in Node, workerd and
# Chromium. Installs what it needs when missing (wasm32 target, the pinned
# wasm-bindgen CLI, binaryen, npm packages, Debian's chromium and prometheus), so it works on a
# fresh machine with only the Rust toolchain, Node 20 and npm.
set -euo pipefail
cd "$(dirname "$0")"

# A fresh clone builds once: incremental state would only add gigabytes.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
command -v node >/dev/null && command -v npm >/dev/null || { echo "node and npm are required (Node 20+)"; exit 1; }
# Debian packages the tests drive: chromium (pages, the package in a
# browser), prometheus (it scrapes latch; promtool checks the exposition) and
# postgresql (the PostgreSQL store's tests run on a throwaway cluster).
missing=""
command -v chromium >/dev/null || missing="$missing chromium"
{ [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; } || missing="$missing prometheus"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
if [ -n "$missing" ]; then
  as_root=""; [ "$(id -u)" -eq 0 ] || as_root="sudo"
  $as_root apt-get update
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y $missing
fi

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build the npm package (latch-shared for wasm32 + bindings) and check its size budget"
./verifier-wasm/build.sh
./benches/wasm-size.sh --check
(cd verifier-wasm/tests && npm install --no-audit --no-fund)

step "pack the npm package and install the tarball where its tests run (they use the install, not the source folder)"
mkdir -p target/npm-pack
tarball=$(cd verifier-wasm/pkg && npm pack --silent --pack-destination ../../target/npm-pack)
(cd verifier-wasm/tests && npm install --no-save --no-audit --no-fund "../../target/npm-pack/$tarball")

step "build the latch binary (the integration tests run it; it embeds the web demo and the package)"
cargo build --locked -p latch-server

step "a throwaway PostgreSQL cluster (stopped and removed when this script exits)"
# shellcheck source=tests/postgres/cluster.sh
source ./tests/postgres/cluster.sh

step "passlib in a virtualenv (the user-import test hashes with it, as a FastAPI app would)"
./tests/passlib/setup.sh

step "Rust tests: latch-shared rules, server units, store conformance (sled and PostgreSQL), HTTP integration"
cargo test --workspace --locked

step "the HTTP integration suite again, every in-process server on PostgreSQL"
# Tests of what only sled has (its files, its directory checks) return early here.
LATCH_TEST_STORE=postgres cargo test --locked -p latch-tests --test integration

step "schemathesis over /openapi.json against the binary (bounded; pinned in a venv)"
./tests/schemathesis/run.sh

step "latch-shared's rule tests again in wasm32 (wasm-bindgen-test, in Node)"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test --locked -p latch-shared --target wasm32-unknown-unknown

step "the installed npm package in Node, workerd and Chromium; its bundlers; the revocation feed against the latch binary built above; publishing"
(cd verifier-wasm/tests && node --test node.test.mjs workerd.test.mjs browser.test.mjs revocation.test.mjs bundlers.test.mjs package.test.mjs)

echo
echo "all tests passed"
