// Verifies a token the way a Node API would: discovery document -> remote JWKS -> jose.
// Usage: node verify.mjs DISCOVERY_URL TOKEN AUDIENCE; prints one JSON line.
import { createRemoteJWKSet, jwtVerify } from "jose";

const [discoveryUrl, token, audience] = process.argv.slice(2);
const discovery = await (await fetch(discoveryUrl)).json();
const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri));
try {
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer: discovery.issuer,
    audience,
    typ: "at+jwt",
  });
  console.log(JSON.stringify({ ok: true, payload, header: protectedHeader }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, code: error.code, message: error.message }));
}
