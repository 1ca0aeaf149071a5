// @latch/verifier inside workerd (the Cloudflare Workers runtime, from npm):
// a worker verifies each request's Authorization header. The package's .wasm
// is a wasm module of the worker, because workerd refuses to compile bytes.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as jose from "jose";
import { startWorkerd } from "./workerd-run.mjs";

const here = new URL(".", import.meta.url).pathname;
const ISSUER = "https://auth.example/t/edge";
const AUDIENCE = "edge";

const ed = await jose.generateKeyPair("EdDSA", { extractable: true });
const ec = await jose.generateKeyPair("ES256", { extractable: true });
const jwks = {
  keys: [
    { ...(await jose.exportJWK(ed.publicKey)), kid: "ed", alg: "EdDSA", use: "sig" },
    { ...(await jose.exportJWK(ec.publicKey)), kid: "ec", alg: "ES256", use: "sig" },
  ],
};
const mint = (alg, key, kid, exp = "10m") =>
  new jose.SignJWT({ sub: "edge-user", roles: ["user"], tid: "edge", sid: "s", jti: "j", scope: "openid" })
    .setProtectedHeader({ alg, kid, typ: "at+jwt" })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setNotBefore("0s")
    .setExpirationTime(exp)
    .sign(key);

const dir = mkdtempSync(join(tmpdir(), "latch-workerd-jwks-"));
writeFileSync(join(dir, "jwks.json"), JSON.stringify(jwks));
const worker = await startWorkerd(
  join(here, "workerd", "config.capnp.template"),
  { "worker.js": join(here, "workerd", "worker.js"), "jwks.json": join(dir, "jwks.json") },
  { ISSUER, AUDIENCE },
);
after(async () => {
  await worker.stop();
  rmSync(dir, { recursive: true, force: true });
});
const base = worker.base;

const call = async (token) => {
  const response = await fetch(base, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: response.status, body: await response.json() };
};

test("a worker in workerd verifies EdDSA and ES256 bearer tokens", async () => {
  for (const [alg, key, kid] of [["EdDSA", ed.privateKey, "ed"], ["ES256", ec.privateKey, "ec"]]) {
    const { status, body } = await call(await mint(alg, key, kid));
    assert.equal(status, 200, `${alg}: ${JSON.stringify(body)}`);
    assert.equal(body.sub, "edge-user");
    assert.equal(body.sync, "edge-user", "the synchronous path works in workerd too");
    assert.deepEqual(body.roles, ["user"]);
  }
});

test("the worker rejects bad tokens with the verifier's codes", async () => {
  const good = await mint("EdDSA", ed.privateKey, "ed");
  const [header, , signature] = good.split(".");
  const tampered = `${header}.${Buffer.from(JSON.stringify({ sub: "admin", iss: ISSUER, aud: AUDIENCE, exp: 9999999999 })).toString("base64url")}.${signature}`;
  assert.deepEqual((await call(tampered)).body.code, "bad_signature");
  assert.equal((await call(await mint("EdDSA", ed.privateKey, "ed", Math.floor(Date.now() / 1000) - 120))).body.code, "expired");
  assert.equal((await call(await mint("EdDSA", ed.privateKey, "other"))).body.code, "unknown_kid");
  assert.equal((await call(null)).status, 401);
});
