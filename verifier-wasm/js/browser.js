// Browser entry point (<script type="module">): the .wasm is fetched from beside this file.
import init from "./latch_verifier.js";
import { markInitialized } from "./core.js";

await init({ module_or_path: new URL("./latch_verifier_bg.wasm", import.meta.url) });
markInitialized();

export { Verifier, VerifyError, createRemoteVerifier, decodeUnverified, expiresIn, hasRole, hasScope } from "./core.js";
