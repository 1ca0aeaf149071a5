// esbuild (`--loader:.wasm=file`) and webpack (`type: "asset/resource"` for
// .wasm) both turn this import into the URL of the emitted file.
import wasmUrl from "@latch/verifier/latch_verifier_bg.wasm";
import { run } from "./app.js";

run(new URL(wasmUrl, document.baseURI));
