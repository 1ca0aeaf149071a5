// An edge worker bundled by esbuild (`--loader:.wasm=copy`): workerd, like
// Cloudflare Workers, imports the .wasm as a compiled module, and the
// explicit entry takes it synchronously.
import wasm from "@latch/verifier/latch_verifier_bg.wasm";
import { Verifier, initSync } from "@latch/verifier/init";

initSync(wasm);
let verifier;

export default {
  async fetch(request, env) {
    verifier ??= new Verifier(env.JWKS, { issuer: env.ISSUER, audience: env.AUDIENCE });
    try {
      const claims = await verifier.verifyAsync((request.headers.get("authorization") ?? "").slice(7));
      return Response.json({ ok: true, sub: claims.sub });
    } catch (error) {
      return Response.json({ ok: false, code: error.code ?? String(error) }, { status: 401 });
    }
  },
};
