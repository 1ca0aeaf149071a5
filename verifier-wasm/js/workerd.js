// Edge entry point (workerd / Cloudflare Workers): these runtimes refuse to compile
// wasm from bytes, so the .wasm is imported as a compiled module.
import wasmModule from "./latch_verifier_bg.wasm";
import { initSync } from "./latch_verifier.js";
import { markInitialized } from "./core.js";

initSync({ module: wasmModule });
markInitialized();

export { Verifier, VerifyError, createRemoteVerifier, decodeUnverified, expiresIn, hasRole, hasScope } from "./core.js";
