// What the edge benchmark runs inside Chromium and workerd: jose's jwtVerify
// and @latch/verifier (verifyAsync and verify) on the same tokens, in the
// same runtime. Bundled by esbuild with jose's browser build and the
// package's explicit entry (../verifier-edge.mjs).
import * as jose from "jose";
import { Verifier, init, initSync } from "../../verifier-wasm/pkg/init.js";

let state;

/** Loads the wasm (a URL or a compiled module) and imports every key once. */
export async function setup(fixture, wasm) {
  if (wasm instanceof WebAssembly.Module) initSync(wasm);
  else await init(wasm);
  const { issuer, audience, jwks, secret, tokens } = fixture;
  const latch = new Verifier(jwks, { issuer, audience });
  const local = jose.createLocalJWKSet({ keys: jwks.keys.filter((key) => key.kty !== "oct") });
  const hmac = jose.base64url.decode(secret);
  const runs = {};
  for (const [alg, token] of Object.entries(tokens)) {
    const options = { issuer, audience, typ: "at+jwt", algorithms: [alg] };
    const joseKey = alg === "HS256" ? hmac : local;
    runs[alg] = {
      jose: () => jose.jwtVerify(token, joseKey, options),
      latchAsync: () => latch.verifyAsync(token),
      latchSync: async () => latch.verify(token),
    };
    // Every path accepts its token before anything is timed (and WebCrypto keys are imported).
    for (const run of Object.values(runs[alg])) await run();
  }
  state = runs;
}

/** Runs `n` verifications of `alg` with `impl`, one after another. */
export async function measure(impl, alg, n) {
  const run = state[alg][impl];
  for (let i = 0; i < n; i += 1) await run();
}
