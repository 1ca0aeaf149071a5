// Explicit entry point for bundlers and hosts that do not find the .wasm
// beside the entry file: the caller hands over the wasm, and nothing here
// awaits at the top level or reads import.meta, so it bundles as ESM or IIFE.
//
//   import { init, Verifier } from "@latch/verifier/init";
//   await init(wasmUrl);   // a URL or string, a Response (or its promise), bytes, or a WebAssembly.Module
//   initSync(wasmModule);  // a WebAssembly.Module or bytes, at once (edge workers)
import initWasm, { initSync as initWasmSync } from "./latch_verifier.js";
import { VerifyError, markInitialized } from "./core.js";

let loading;

/** Loads the verifier's wasm once; later calls return the same promise. */
export function init(wasm) {
  if (wasm === undefined || wasm === null) {
    return Promise.reject(new VerifyError("invalid_options", "init(wasm) needs the package's latch_verifier_bg.wasm: its URL, a Response, its bytes or a compiled WebAssembly.Module"));
  }
  loading ??= initWasm({ module_or_path: wasm }).then(
    () => markInitialized(),
    (error) => {
      loading = undefined;
      throw new VerifyError("invalid_options", `the wasm could not be loaded: ${error?.message ?? error}`);
    },
  );
  return loading;
}

/** Loads the wasm synchronously from a compiled WebAssembly.Module or its bytes. */
export function initSync(wasm) {
  if (!(wasm instanceof WebAssembly.Module) && !ArrayBuffer.isView(wasm) && !(wasm instanceof ArrayBuffer)) {
    throw new VerifyError("invalid_options", "initSync(wasm) needs a WebAssembly.Module or the bytes of latch_verifier_bg.wasm");
  }
  initWasmSync({ module: wasm });
  markInitialized();
}

export { Verifier, VerifyError, createRemoteVerifier, decodeUnverified, expiresIn, hasRole, hasScope } from "./core.js";
