#!/usr/bin/env bash
# Builds the npm package @latch/verifier into verifier-wasm/pkg/ (build output, not committed).
# Installs what it needs when missing: the wasm32 target, the wasm-bindgen CLI of
# the pinned crate version, and binaryen's wasm-opt (from npm).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

version=$(grep -E '^wasm-bindgen = "=' Cargo.toml | sed -E 's/.*"=([0-9.]+)".*/\1/')
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
  cargo install --locked wasm-bindgen-cli --version "=$version"
fi
tools="$root/target/npm-tools"
if [ ! -x "$tools/node_modules/.bin/wasm-opt" ]; then
  mkdir -p "$tools"
  (cd "$tools" && [ -f package.json ] || echo '{"private":true}' > package.json)
  npm install --prefix "$tools" --no-audit --no-fund --silent binaryen@132
fi

cargo build --locked -p latch-verifier-wasm --target wasm32-unknown-unknown --profile wasm
out="$here/pkg"
rm -rf "$out"
mkdir -p "$out"
wasm-bindgen --target web --out-dir "$out" --out-name latch_verifier \
  "$root/target/wasm32-unknown-unknown/wasm/latch_verifier_wasm.wasm"
"$tools/node_modules/.bin/wasm-opt" -Oz --strip-debug --strip-producers \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$out/latch_verifier_bg.wasm" -o "$out/latch_verifier_bg.wasm"
# wasm-bindgen's own declarations describe the internal glue; the package's are in index.d.ts.
rm -f "$out/latch_verifier.d.ts" "$out/latch_verifier_bg.wasm.d.ts"
# Every entry hands the glue its wasm: its fallback to import.meta.url is
# removed, so the explicit `init` entry bundles as IIFE without a warning.
glue="$out/latch_verifier.js"
fallback="module_or_path = new URL('latch_verifier_bg.wasm', import.meta.url);"
grep -qF "$fallback" "$glue" || { echo "wasm-bindgen's glue changed: no import.meta fallback to remove"; exit 1; }
sed -i "s|$fallback|throw new Error('@latch/verifier: no wasm was given to init');|" "$glue"
if grep -q "import.meta" "$glue"; then echo "$glue still reads import.meta"; exit 1; fi
cp "$here"/js/*.js "$here"/js/*.d.ts "$here"/js/package.json "$here"/js/README.md "$out/"
cp "$root/LICENSE-MIT" "$root/LICENSE-APACHE" "$out/"
echo "built $out ($(gzip -9 -c "$out/latch_verifier_bg.wasm" | wc -c) bytes of wasm, gzipped)"
