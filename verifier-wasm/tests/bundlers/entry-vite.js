// Vite: `?url` makes the import the URL of the emitted file.
import wasmUrl from "@latch/verifier/latch_verifier_bg.wasm?url";
import { run } from "./app.js";

run(wasmUrl);
