// The edge benchmark in a Chromium page: window.bench.setup / measure.
import wasmUrl from "../../verifier-wasm/pkg/latch_verifier_bg.wasm";
import { measure, setup } from "./bench.js";

window.bench = {
  setup: (fixture) => setup(fixture, new URL(wasmUrl, document.baseURI)),
  async time(impl, alg, n) {
    const start = performance.now();
    await measure(impl, alg, n);
    return performance.now() - start;
  },
};
