// @latch/verifier beside jose's jwtVerify, in one Node process, on the same tokens.
// Prints ops/s per algorithm and the ratio (ours / jose). Needs verifier-wasm/build.sh first.
// Usage: node benches/verifier-vs-jose.mjs [seconds per algorithm, default 6]
import * as jose from "jose";
import { Verifier } from "../verifier-wasm/pkg/node.js";

const seconds = Number(process.argv[2] ?? 6);
const issuer = "https://auth.example/t/bench";
const audience = "bench";

/** Runs `n` verifications; milliseconds. */
async function batch(run, n) {
  const start = performance.now();
  for (let i = 0; i < n; i += 1) await run();
  return performance.now() - start;
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/**
 * Interleaves ~50 ms batches of each implementation until `seconds` have
 * passed (at least 5 rounds): drift on a shared machine hits all alike.
 * Returns the median ops/s of each.
 */
async function compare(runs) {
  const sizes = {};
  for (const [name, run] of Object.entries(runs)) {
    sizes[name] = Math.max(5, Math.round((20 * 50) / Math.max(await batch(run, 20), 0.1)));
  }
  const rates = Object.fromEntries(Object.keys(runs).map((name) => [name, []]));
  const deadline = performance.now() + seconds * 1000;
  while (performance.now() < deadline || rates.jose.length < 5) {
    for (const [name, run] of Object.entries(runs)) rates[name].push((sizes[name] * 1000) / (await batch(run, sizes[name])));
  }
  return Object.fromEntries(Object.entries(rates).map(([name, values]) => [name, median(values)]));
}

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

  const measured = await compare({
    jose: () => jose.jwtVerify(token, joseKey, options),
    sync: async () => ours.verify(token),
    async: () => ours.verifyAsync(token),
  });
  rows.push({ alg, ...measured });
}

const fmt = (n) => Math.round(n).toLocaleString("en-US");
console.log(`node ${process.version}, ${seconds} s per algorithm, median of interleaved ~50 ms batches\n`);
console.log("| alg | jose jwtVerify ops/s | latch verify (sync) ops/s | ratio | latch verifyAsync ops/s | ratio |");
console.log("|---|---|---|---|---|---|");
for (const { alg, jose: j, sync, async } of rows) {
  console.log(`| ${alg} | ${fmt(j)} | ${fmt(sync)} | ${(sync / j).toFixed(2)} | ${fmt(async)} | ${(async / j).toFixed(2)} |`);
}
