// The edge benchmark as a workerd worker: /run?impl=&alg=&n= runs n verifications.
import wasm from "../../verifier-wasm/pkg/latch_verifier_bg.wasm";
import { measure, setup } from "./bench.js";

let ready;

export default {
  async fetch(request, env) {
    ready ??= setup(JSON.parse(env.FIXTURE), wasm);
    await ready;
    const url = new URL(request.url);
    await measure(url.searchParams.get("impl"), url.searchParams.get("alg"), Number(url.searchParams.get("n")));
    return new Response("done");
  },
};
