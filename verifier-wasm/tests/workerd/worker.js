// An edge worker that verifies every request's bearer token with @latch/verifier.
import { Verifier } from "./verifier/workerd.js";

let verifier;

export default {
  async fetch(request, env) {
    verifier ??= new Verifier(env.JWKS, { issuer: env.ISSUER, audience: env.AUDIENCE });
    const authorization = request.headers.get("authorization") ?? "";
    if (!authorization.startsWith("Bearer ")) {
      return Response.json({ code: "missing_token" }, { status: 401 });
    }
    try {
      const claims = await verifier.verifyAsync(authorization.slice("Bearer ".length));
      return Response.json({ sub: claims.sub, roles: claims.roles, sync: verifier.verify(authorization.slice(7)).sub });
    } catch (error) {
      return Response.json({ code: error.code ?? "error", message: error.message }, { status: 401 });
    }
  },
};
