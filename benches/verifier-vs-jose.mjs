// @latch/verifier beside jose's jwtVerify, in one Node process, on the same tokens.
// Prints ops/s per algorithm and the ratio (ours / jose). Needs verifier-wasm/build.sh first.
// Usage: node benches/verifier-vs-jose.mjs [seconds-per-measurement, default 1]
import * as jose from "jose";
import { Verifier } from "../verifier-wasm/pkg/node.js";

const seconds = Number(process.argv[2] ?? 1);
const issuer = "https://auth.example/t/bench";
const audience = "bench";

async function measure(run) {
  const deadline = performance.now() + seconds * 1000;
  let count = 0;
  while (performance.now() < deadline) {
    for (let i = 0; i < 100; i += 1) await run();
    count += 100;
  }
  return count / seconds;
}

const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];

const rows = [];
for (const alg of ["EdDSA", "ES256", "RS256", "HS256"]) {
  let signingKey;
  let jwk;
  if (alg === "HS256") {
    const secret = crypto.getRandomValues(new Uint8Array(32));
    signingKey = secret;
    jwk = { kty: "oct", k: Buffer.from(secret).toString("base64url") };
  } else {
    const pair = await jose.generateKeyPair(alg, { extractable: true });
    signingKey = pair.privateKey;
    jwk = await jose.exportJWK(pair.publicKey);
  }
  const jwks = { keys: [{ ...jwk, kid: "k", alg }] };
  const token = await new jose.SignJWT({ sub: "u", tid: "bench", sid: "s", jti: "j", roles: ["user"], scope: "openid" })
    .setProtectedHeader({ alg, kid: "k", typ: "at+jwt" })
    .setIssuer(issuer)
    .setAudience(audience)
    .setIssuedAt()
    .setExpirationTime("1h")
    .sign(signingKey);

  const ours = new Verifier(jwks, { issuer, audience });
  // jose as a Node API would use it: a local JWKS (keys imported once and cached) or the secret.
  const joseKey = alg === "HS256" ? signingKey : jose.createLocalJWKSet(jwks);
  const options = { issuer, audience, typ: "at+jwt", algorithms: [alg] };
  await jose.jwtVerify(token, joseKey, options);
  await ours.verifyAsync(token);

  const samples = { jose: [], sync: [], async: [] };
  for (let round = 0; round < 3; round += 1) {
    samples.jose.push(await measure(() => jose.jwtVerify(token, joseKey, options)));
    samples.sync.push(await measure(() => ours.verify(token)));
    samples.async.push(await measure(() => ours.verifyAsync(token)));
  }
  rows.push({ alg, jose: median(samples.jose), sync: median(samples.sync), async: median(samples.async) });
}

const fmt = (n) => Math.round(n).toLocaleString("en-US");
console.log(`node ${process.version}, ${seconds}s per measurement, median of 3 interleaved rounds\n`);
console.log("| alg | jose jwtVerify ops/s | latch verify (sync) ops/s | ratio | latch verifyAsync ops/s | ratio |");
console.log("|---|---|---|---|---|---|");
for (const { alg, jose: j, sync, async } of rows) {
  console.log(`| ${alg} | ${fmt(j)} | ${fmt(sync)} | ${(sync / j).toFixed(2)} | ${fmt(async)} | ${(async / j).toFixed(2)} |`);
}
