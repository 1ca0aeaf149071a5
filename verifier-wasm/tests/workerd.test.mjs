// @latch/verifier inside workerd (the Cloudflare Workers runtime, from npm):
// a worker verifies each request's Authorization header. The package's .wasm
// is a wasm module of the worker, because workerd refuses to compile bytes.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as jose from "jose";

const here = new URL(".", import.meta.url).pathname;
const ISSUER = "https://auth.example/t/edge";
const AUDIENCE = "edge";

const freePort = () =>
  new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

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

const dir = mkdtempSync(join(tmpdir(), "latch-workerd-"));
mkdirSync(join(dir, "verifier"));
for (const file of ["workerd.js", "core.js", "latch_verifier.js", "latch_verifier_bg.wasm"]) {
  cpSync(join(here, "..", "pkg", file), join(dir, "verifier", file));
}
cpSync(join(here, "workerd", "worker.js"), join(dir, "worker.js"));
writeFileSync(join(dir, "jwks.json"), JSON.stringify(jwks));
const port = await freePort();
const config = readFileSync(join(here, "workerd", "config.capnp.template"), "utf8")
  .replace("@PORT@", String(port))
  .replace("@ISSUER@", ISSUER)
  .replace("@AUDIENCE@", AUDIENCE);
writeFileSync(join(dir, "config.capnp"), config);

const workerd = spawn(join(here, "node_modules", ".bin", "workerd"), ["serve", join(dir, "config.capnp")], {
  stdio: ["ignore", "inherit", "inherit"],
});
after(() => workerd.kill());

const base = `http://127.0.0.1:${port}`;
async function ready() {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (workerd.exitCode !== null) throw new Error(`workerd exited with ${workerd.exitCode}`);
    try {
      await fetch(base);
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error("workerd did not start in time");
}
await ready();

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
