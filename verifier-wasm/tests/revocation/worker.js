// An edge worker that verifies bearer tokens against a live latch, following
// its revocation feed. For the tests: `/advance?seconds=N` moves the
// verifier's clock; POST `/forge` with a body makes that body the feed's
// answer (an empty body stops); `/refresh` fetches the feed now.
import { createRemoteVerifier } from "./verifier/workerd.js";

let offset = 0;
let forged;
let verifier;

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/advance") {
      offset += Number(url.searchParams.get("seconds"));
      return new Response("ok");
    }
    if (url.pathname === "/forge") {
      forged = (await request.text()) || undefined;
      return new Response("ok");
    }
    verifier ??= createRemoteVerifier(env.ISSUER, {
      audience: env.AUDIENCE,
      revocation: { maxAgeSeconds: 5 },
      clock: () => Date.now() / 1000 + offset,
      fetch: (target, init) =>
        forged !== undefined && String(target).includes("/.well-known/revocations")
          ? Promise.resolve(new Response(forged, { headers: { "content-type": "application/jwt" } }))
          : fetch(target, init),
    });
    if (url.pathname === "/refresh") {
      return verifier.refreshRevocations().then(
        () => Response.json({ ok: true }),
        (error) => Response.json({ ok: false, code: error.code ?? String(error) }),
      );
    }
    const token = (request.headers.get("authorization") ?? "").slice("Bearer ".length);
    try {
      const claims = await verifier.verify(token);
      return Response.json({ ok: true, sub: claims.sub });
    } catch (error) {
      return Response.json({ ok: false, code: error.code ?? String(error) }, { status: 401 });
    }
  },
};
