// @latch/verifier in Node: tokens minted by jose verify, the attack set fails
// with the right code, and the remote verifier caches as documented.
// Run by the test command, against the packed and installed package.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import * as crypto from "node:crypto";
import * as jose from "jose";
import {
  Verifier,
  VerifyError,
  createRemoteVerifier,
  decodeUnverified,
  expiresIn,
  hasRole,
  hasScope,
} from "@latch/verifier";
import "./installed.mjs";
import { badEd25519Forms } from "./ed25519-forms.mjs";

const ISSUER = "https://auth.example/t/acme";
const AUDIENCE = "acme";
const NOW = Math.floor(Date.now() / 1000);
const claims = () => ({ sub: "user-1", tid: "acme", sid: "s-1", roles: ["user"], scope: "openid profile", jti: "j-1" });

const b64 = (bytes) => Buffer.from(bytes).toString("base64url");
const json64 = (value) => b64(typeof value === "string" ? value : JSON.stringify(value));

async function mint(alg, key, { header = {}, payload = claims(), exp = NOW + 900, nbf = NOW } = {}) {
  return new jose.SignJWT(payload)
    .setProtectedHeader({ alg, typ: "at+jwt", ...header })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt(NOW)
    .setNotBefore(nbf)
    .setExpirationTime(exp)
    .sign(key);
}

/** One key pair per asymmetric algorithm, plus an HS256 secret, with the JWKS that publishes them. */
async function keys() {
  const pairs = {};
  const jwks = { keys: [] };
  for (const alg of ["EdDSA", "ES256", "RS256"]) {
    const pair = await jose.generateKeyPair(alg, { extractable: true });
    pairs[alg] = pair;
    jwks.keys.push({ ...(await jose.exportJWK(pair.publicKey)), kid: `${alg}-key`, alg, use: "sig" });
  }
  const secret = crypto.randomBytes(32);
  pairs.HS256 = { privateKey: secret };
  const withSecret = { keys: [...jwks.keys, { kty: "oct", k: b64(secret), kid: "HS256-key", alg: "HS256" }] };
  return { pairs, jwks, withSecret };
}

const fixture = await keys();
const verifier = new Verifier(fixture.withSecret, { issuer: ISSUER, audience: AUDIENCE });
const token = (alg, options = {}) =>
  mint(alg, fixture.pairs[alg].privateKey, { ...options, header: { kid: `${alg}-key`, ...options.header } });

/** Expects both the sync and the async path to fail with `code`. */
async function rejects(jwt, code, using = verifier) {
  assert.throws(() => using.verify(jwt, NOW), (error) => error instanceof VerifyError && error.code === code, `sync: ${code}`);
  await assert.rejects(using.verifyAsync(jwt, NOW), (error) => error instanceof VerifyError && error.code === code, `async: ${code}`);
}

/** Signs raw header and payload texts with node:crypto. */
function signRaw(alg, privateKey, headerText, payloadText) {
  const input = `${json64(headerText)}.${json64(payloadText)}`;
  let signature;
  if (alg === "EdDSA") signature = crypto.sign(null, Buffer.from(input), privateKey);
  else if (alg === "ES256") signature = crypto.sign("sha256", Buffer.from(input), { key: privateKey, dsaEncoding: "ieee-p1363" });
  else if (alg === "RS256") signature = crypto.sign("sha256", Buffer.from(input), privateKey);
  else signature = crypto.createHmac("sha256", privateKey).update(input).digest();
  return `${input}.${b64(signature)}`;
}

const fullPayload = (extra = {}) => ({ iss: ISSUER, aud: AUDIENCE, exp: NOW + 900, iat: NOW, nbf: NOW, ...claims(), ...extra });

test("tokens minted by jose verify for every algorithm, sync and async", async () => {
  for (const alg of ["EdDSA", "ES256", "RS256", "HS256"]) {
    const jwt = await token(alg);
    const sync = verifier.verify(jwt);
    const viaAsync = await verifier.verifyAsync(jwt);
    assert.equal(sync.sub, "user-1", alg);
    assert.deepEqual(viaAsync, sync, alg);
    assert.deepEqual(sync.roles, ["user"]);
  }
});

test("alg none is rejected", async () => {
  const none = `${json64({ alg: "none", typ: "at+jwt", kid: "EdDSA-key" })}.${json64(fullPayload())}.`;
  await rejects(none, "malformed");
  await rejects(`${none}AAAA`, "alg_not_allowed");
});

test("HS256 signed with the public key as the secret is rejected", async () => {
  const { x } = fixture.jwks.keys.find((k) => k.kid === "EdDSA-key");
  const pem = fixture.pairs.RS256.publicKey.export({ type: "spki", format: "pem" });
  for (const [kid, secret] of [["EdDSA-key", Buffer.from(x, "base64url")], ["EdDSA-key", Buffer.from(x)], ["RS256-key", Buffer.from(pem)]]) {
    const forged = signRaw("HS256", secret, { alg: "HS256", typ: "at+jwt", kid }, fullPayload());
    await rejects(forged, "alg_not_allowed");
  }
});

test("a header alg that differs from the key's is rejected", async () => {
  const forged = signRaw("ES256", fixture.pairs.ES256.privateKey, { alg: "ES256", typ: "at+jwt", kid: "EdDSA-key" }, fullPayload());
  await rejects(forged, "alg_not_allowed");
});

test("jku and embedded jwk headers pointing at an attacker key are ignored", async () => {
  const attacker = await jose.generateKeyPair("EdDSA", { extractable: true });
  const attackerJwk = await jose.exportJWK(attacker.publicKey);
  const header = { kid: "EdDSA-key", jwk: attackerJwk, jku: "https://attacker.example/jwks.json" };
  await rejects(await mint("EdDSA", attacker.privateKey, { header }), "bad_signature");
  const noKid = { jwk: attackerJwk, jku: "https://attacker.example/jwks.json" };
  await rejects(await mint("EdDSA", attacker.privateKey, { header: noKid }), "unknown_kid");
});

test("time and audience claims are enforced", async () => {
  await rejects(await token("EdDSA", { exp: NOW - 30 }), "expired");
  await rejects(await token("EdDSA", { nbf: NOW + 31 }), "not_yet_valid");
  assert.equal(verifier.verify(await token("EdDSA", { exp: NOW - 29 }), NOW).sub, "user-1", "inside the leeway");
  assert.equal((await verifier.verifyAsync(await token("ES256", { nbf: NOW + 30 }), NOW)).sub, "user-1");
  const wrongIssuer = signRaw("EdDSA", fixture.pairs.EdDSA.privateKey, { alg: "EdDSA", typ: "at+jwt", kid: "EdDSA-key" }, fullPayload({ iss: "https://auth.example/t/other" }));
  await rejects(wrongIssuer, "wrong_issuer");
  const { aud, ...noAudience } = fullPayload();
  const missingAudience = signRaw("EdDSA", fixture.pairs.EdDSA.privateKey, { alg: "EdDSA", typ: "at+jwt", kid: "EdDSA-key" }, noAudience);
  await rejects(missingAudience, "missing_claim");
  const wrongAudience = signRaw("EdDSA", fixture.pairs.EdDSA.privateKey, { alg: "EdDSA", typ: "at+jwt", kid: "EdDSA-key" }, fullPayload({ aud: "other" }));
  await rejects(wrongAudience, "wrong_audience");
  const stringExp = signRaw("EdDSA", fixture.pairs.EdDSA.privateKey, { alg: "EdDSA", typ: "at+jwt", kid: "EdDSA-key" }, fullPayload({ exp: String(NOW + 900) }));
  await rejects(stringExp, "invalid_claim");
  assert.equal(aud, AUDIENCE);
});

test("unknown kids, tampered payloads and foreign signatures are rejected", async () => {
  await rejects(await token("EdDSA", { header: { kid: "nope" } }), "unknown_kid");
  for (const alg of ["EdDSA", "ES256", "RS256", "HS256"]) {
    const [header, , signature] = (await token(alg)).split(".");
    const tampered = `${header}.${json64(fullPayload({ roles: ["admin"] }))}.${signature}`;
    await rejects(tampered, "bad_signature");
  }
});

test("an ES256 signature with r = s = 0 is rejected on both paths", async () => {
  const [header, payload] = (await token("ES256")).split(".");
  await rejects(`${header}.${payload}.${b64(new Uint8Array(64))}`, "bad_signature");
});

test("a small-order Ed25519 key with a trivial signature is rejected", async () => {
  const identity = new Uint8Array(32);
  identity[0] = 1;
  const weak = new Verifier({ keys: [{ kty: "OKP", crv: "Ed25519", x: b64(identity), kid: "weak" }] }, { issuer: ISSUER, audience: AUDIENCE });
  const signature = new Uint8Array(64);
  signature[0] = 1;
  const jwt = `${json64({ alg: "EdDSA", typ: "at+jwt", kid: "weak" })}.${json64(fullPayload())}.${b64(signature)}`;
  await rejects(jwt, "bad_signature", weak);
  // R = the base point, S = 1 satisfies the equation for an identity key and
  // any message; OpenSSL (Node's native check) accepts it, the wasm form rules must not.
  const baseR = Buffer.concat([Buffer.from(`58${"66".repeat(31)}`, "hex"), Buffer.alloc(32)]);
  baseR[32] = 1;
  const forged = `${json64({ alg: "EdDSA", typ: "at+jwt", kid: "weak" })}.${json64(fullPayload())}.${b64(baseR)}`;
  await rejects(forged, "bad_signature", weak);
});

test("Ed25519 signatures with a non-canonical S or a small-order R are rejected", async () => {
  const { nonCanonicalS, smallOrderR } = badEd25519Forms(await token("EdDSA"));
  await rejects(nonCanonicalS, "bad_signature");
  await rejects(smallOrderR, "bad_signature");
});

test("duplicate claim names, unknown crit, wrong typ and oversized tokens are rejected", async () => {
  const key = fixture.pairs.EdDSA.privateKey;
  const header = { alg: "EdDSA", typ: "at+jwt", kid: "EdDSA-key" };
  const doubled = `{"exp":${NOW - 1000},${JSON.stringify(fullPayload()).slice(1)}`;
  await rejects(signRaw("EdDSA", key, header, doubled), "duplicate_member");
  await rejects(signRaw("EdDSA", key, { ...header, crit: ["exp"], exp: 1 }, fullPayload()), "unsupported_crit");
  await rejects(signRaw("EdDSA", key, { ...header, typ: "JWT" }, fullPayload()), "wrong_type");
  await rejects(signRaw("EdDSA", key, header, fullPayload({ padding: "x".repeat(9000) })), "too_large");
});

test("options are validated", () => {
  assert.throws(() => new Verifier(fixture.jwks, { issuer: ISSUER, audience: AUDIENCE, leewaySeconds: 301 }), { code: "invalid_options" });
  assert.throws(() => new Verifier(fixture.jwks, { audience: AUDIENCE }), { code: "invalid_options" });
  assert.throws(() => new Verifier("{not json", { issuer: ISSUER, audience: AUDIENCE }), { code: "invalid_key" });
  const onlyEd = new Verifier(fixture.withSecret, { issuer: ISSUER, audience: AUDIENCE, algorithms: ["EdDSA"] });
  return token("HS256").then((jwt) => assert.throws(() => onlyEd.verify(jwt), { code: "alg_not_allowed" }));
});

test("decodeUnverified, hasRole, hasScope and expiresIn read claims", async () => {
  const jwt = await token("EdDSA", { exp: NOW + 600 });
  const { header, payload } = decodeUnverified(jwt);
  assert.equal(header.kid, "EdDSA-key");
  assert.equal(payload.sub, "user-1");
  assert.ok(hasRole(payload, "user") && !hasRole(payload, "admin"));
  assert.ok(hasScope(payload, "profile") && !hasScope(payload, "prof"));
  assert.equal(expiresIn(payload, NOW), 600);
  assert.ok(expiresIn(payload, NOW + 601) < 0);
  assert.throws(() => decodeUnverified("not-a-token"), { code: "malformed" });
});

/** A local issuer serving discovery and a JWKS, counting requests. */
async function issuerServer(initialJwks, { maxAge = 300 } = {}) {
  const state = { jwks: initialJwks, discovery: 0, jwksRequests: 0, fail: false, maxAge };
  const server = createServer((req, res) => {
    if (state.fail) {
      res.writeHead(503).end();
      return;
    }
    const base = `http://127.0.0.1:${server.address().port}/t/acme`;
    if (req.url === "/t/acme/.well-known/openid-configuration") {
      state.discovery += 1;
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ issuer: base, jwks_uri: `${base}/jwks` }));
    } else if (req.url === "/t/acme/jwks") {
      state.jwksRequests += 1;
      res.writeHead(200, { "content-type": "application/json", "cache-control": `public, max-age=${state.maxAge}` });
      res.end(JSON.stringify(state.jwks));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.issuer = `http://127.0.0.1:${server.address().port}/t/acme`;
  state.close = () => new Promise((resolve) => server.close(resolve));
  return state;
}

async function remoteToken(issuer, alg = "EdDSA", kid = `${alg}-key`, key = fixture.pairs[alg].privateKey) {
  return new jose.SignJWT(claims())
    .setProtectedHeader({ alg, typ: "at+jwt", kid })
    .setIssuer(issuer)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime("10m")
    .sign(key);
}

test("the remote verifier fetches once for concurrent callers and caches by max-age", async () => {
  const server = await issuerServer(fixture.jwks, { maxAge: 60 });
  let now = NOW;
  const remote = createRemoteVerifier(server.issuer, { audience: AUDIENCE, clock: () => now });
  const jwt = await remoteToken(server.issuer);
  const results = await Promise.all(Array.from({ length: 10 }, () => remote.verify(jwt, NOW)));
  assert.ok(results.every((c) => c.sub === "user-1"));
  assert.equal(server.jwksRequests, 1, "one fetch shared by ten callers");
  now += 59;
  await remote.verify(jwt, NOW);
  assert.equal(server.jwksRequests, 1, "cached within max-age");
  now += 1;
  await remote.verify(jwt, NOW);
  assert.equal(server.jwksRequests, 2, "refetched after max-age");
  await server.close();
});

test("an unknown kid refetches at most once per cooldown", async () => {
  const server = await issuerServer({ keys: fixture.jwks.keys.filter((k) => k.kid !== "ES256-key") });
  let now = NOW;
  const remote = createRemoteVerifier(server.issuer, { audience: AUDIENCE, clock: () => now, cooldownSeconds: 30 });
  await remote.verify(await remoteToken(server.issuer), NOW);
  assert.equal(server.jwksRequests, 1);
  const es = await remoteToken(server.issuer, "ES256");
  now += 5;
  await assert.rejects(remote.verify(es, NOW), { code: "unknown_kid" });
  assert.equal(server.jwksRequests, 1, "within the cooldown: no refetch storm");
  server.jwks = fixture.jwks; // the issuer publishes the key
  now += 30;
  const verified = await remote.verify(es, NOW);
  assert.equal(verified.sub, "user-1");
  assert.equal(server.jwksRequests, 2, "one refetch after the cooldown found the new key");
  await server.close();
});

test("a failed refetch keeps the last good key set; a first fetch failure is jwks_unavailable", async () => {
  const server = await issuerServer(fixture.jwks, { maxAge: 10 });
  let now = NOW;
  const remote = createRemoteVerifier(server.issuer, { audience: AUDIENCE, clock: () => now });
  const jwt = await remoteToken(server.issuer);
  await remote.verify(jwt, NOW);
  server.fail = true;
  now += 11;
  assert.equal((await remote.verify(jwt, NOW)).sub, "user-1", "stale but good keys still verify");
  const fresh = createRemoteVerifier(server.issuer, { audience: AUDIENCE, clock: () => now });
  await assert.rejects(fresh.verify(jwt, NOW), { code: "jwks_unavailable" });
  await server.close();
});

test("a platform cache spares cold isolates the fetch", async () => {
  const server = await issuerServer(fixture.jwks);
  const store = new Map();
  const cache = { get: async (key) => store.get(key), put: async (key, value) => void store.set(key, value) };
  const first = createRemoteVerifier(server.issuer, { audience: AUDIENCE, cache });
  const jwt = await remoteToken(server.issuer);
  await first.verify(jwt);
  assert.equal(server.jwksRequests, 1);
  const coldIsolate = createRemoteVerifier(server.issuer, { audience: AUDIENCE, cache });
  assert.equal((await coldIsolate.verify(jwt)).sub, "user-1");
  assert.equal(server.jwksRequests, 1, "the second isolate used the cached key set");
  await server.close();
});

test("a discovery document naming another issuer is refused", async () => {
  const server = await issuerServer(fixture.jwks);
  const remote = createRemoteVerifier(`${server.issuer}-impostor`, {
    audience: AUDIENCE,
    fetch: (url) => fetch(String(url).replace("-impostor", "")),
  });
  await assert.rejects(remote.verify(await remoteToken(server.issuer)), { code: "wrong_issuer" });
  await server.close();
});
