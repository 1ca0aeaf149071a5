#!/usr/bin/env bash
# Runs every test latch has. Installs what it needs when missing, so it works
# on a fresh machine with only the Rust toolchain, Node 20 and npm.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain: wasm32 target"
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
command -v node >/dev/null && command -v npm >/dev/null || { echo "node and npm are required (Node 20+)"; exit 1; }

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build the latch binary (the integration tests run it)"
cargo build --locked -p latch-server

step "Rust tests: latch-shared rules, server units, store conformance, HTTP integration"
cargo test --workspace --locked

step "latch-shared and the verifier build for wasm32-unknown-unknown"
cargo build --locked -p latch-shared -p latch-verifier-wasm --target wasm32-unknown-unknown

echo
echo "all tests passed"
