// Node entry point: Node compiles wasm from bytes, read next to this file.
import { readFileSync } from "node:fs";
import { initSync } from "./latch_verifier.js";

initSync({ module: readFileSync(new URL("./latch_verifier_bg.wasm", import.meta.url)) });

export * from "./core.js";
