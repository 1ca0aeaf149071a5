// An edge worker that verifies bearer tokens against a live latch, following
// its revocation feed. `/advance?seconds=N` moves the verifier's clock (tests).
import { createRemoteVerifier } from "./verifier/workerd.js";

let offset = 0;
let verifier;

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/advance") {
      offset += Number(url.searchParams.get("seconds"));
      return new Response("ok");
    }
    verifier ??= createRemoteVerifier(env.ISSUER, {
      audience: env.AUDIENCE,
      revocation: { maxAgeSeconds: 5 },
      clock: () => Date.now() / 1000 + offset,
    });
    const token = (request.headers.get("authorization") ?? "").slice("Bearer ".length);
    try {
      const claims = await verifier.verify(token);
      return Response.json({ ok: true, sub: claims.sub });
    } catch (error) {
      return Response.json({ ok: false, code: error.code ?? String(error) }, { status: 401 });
    }
  },
};
