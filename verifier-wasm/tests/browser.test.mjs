// @latch/verifier in Chromium (Debian's package, driven by playwright-core):
// a plain <script type="module"> page imports browser.js and verifies tokens.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { join, extname, normalize } from "node:path";
import * as jose from "jose";
import { launchChromium } from "./chromium.mjs";
import { packageDir } from "./installed.mjs";
import { badEd25519Forms } from "./ed25519-forms.mjs";

const here = new URL(".", import.meta.url).pathname;
const pkg = packageDir;
const types = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html", ".json": "application/json" };

const keys = {};
const jwks = { keys: [] };
for (const alg of ["EdDSA", "ES256", "RS256"]) {
  keys[alg] = await jose.generateKeyPair(alg, { extractable: true });
  jwks.keys.push({ ...(await jose.exportJWK(keys[alg].publicKey)), kid: alg, alg, use: "sig" });
}

const server = createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  const issuer = `http://127.0.0.1:${server.address().port}/t/web`;
  if (url.pathname === "/fixture.json") {
    res.writeHead(200, { "content-type": types[".json"] }).end(JSON.stringify(fixture(issuer)));
  } else if (url.pathname === "/t/web/.well-known/openid-configuration") {
    res.writeHead(200, { "content-type": types[".json"] }).end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks.json` }));
  } else if (url.pathname === "/t/web/jwks.json") {
    res.writeHead(200, { "content-type": types[".json"], "cache-control": "max-age=300" }).end(JSON.stringify(jwks));
  } else if (url.pathname === "/") {
    res.writeHead(200, { "content-type": types[".html"] }).end(readFileSync(join(here, "browser", "page.html")));
  } else if (url.pathname.startsWith("/pkg/")) {
    const file = normalize(join(pkg, url.pathname.slice(5)));
    if (!file.startsWith(pkg)) return res.writeHead(403).end();
    try {
      res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" }).end(readFileSync(file));
    } catch {
      res.writeHead(404).end();
    }
  } else {
    res.writeHead(404).end();
  }
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
after(() => server.close());

let tokens;
function fixture(issuer) {
  return { issuer, audience: "web", jwks, tokens, tampered: tampered(tokens.EdDSA), ...badEd25519Forms(tokens.EdDSA) };
}
function tampered(token) {
  const [header, payload, signature] = token.split(".");
  const claims = JSON.parse(Buffer.from(payload, "base64url"));
  claims.roles = ["admin"];
  return `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${signature}`;
}
const issuer = `http://127.0.0.1:${server.address().port}/t/web`;
tokens = {};
for (const alg of ["EdDSA", "ES256", "RS256"]) {
  tokens[alg] = await new jose.SignJWT({ sub: `web-${alg}`, roles: ["user"] })
    .setProtectedHeader({ alg, kid: alg, typ: "at+jwt" })
    .setIssuer(issuer)
    .setAudience("web")
    .setIssuedAt()
    .setExpirationTime("10m")
    .sign(keys[alg].privateKey);
}

test("the package verifies tokens in Chromium through a plain module script", async () => {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (error) => errors.push(String(error)));
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    await page.waitForFunction(() => window.results !== undefined, null, { timeout: 30_000 });
    const results = await page.evaluate(() => window.results);
    assert.deepEqual(errors, []);
    assert.equal(results.webcrypto, true);
    assert.deepEqual(results.eddsaSync, { ok: true, sub: "web-EdDSA", admin: false });
    // Chromium's WebCrypto has Ed25519: verifyAsync hands the signature to it,
    // after the same form checks, and refuses exactly what wasm refuses.
    assert.equal(results.webcryptoEd25519, true);
    assert.deepEqual(results.eddsaAsync, { ok: true, sub: "web-EdDSA", admin: false });
    assert.deepEqual(results.eddsaTamperedAsync, { ok: false, code: "bad_signature" });
    assert.deepEqual(results.nonCanonicalS, { sync: "bad_signature", async: "bad_signature" });
    assert.deepEqual(results.smallOrderR, { sync: "bad_signature", async: "bad_signature" });
    assert.equal(results.ed25519Calls, 3, "the well-formed EdDSA tokens on the async path (one good, one tampered twice) went to WebCrypto");
    assert.deepEqual(results.es256Async, { ok: true, sub: "web-ES256", admin: false });
    assert.deepEqual(results.rs256Async, { ok: true, sub: "web-RS256", admin: false });
    assert.deepEqual(results.rs256Sync, { ok: true, sub: "web-RS256", admin: false });
    assert.deepEqual(results.tampered, { ok: false, code: "bad_signature" });
    assert.deepEqual(results.remote, { ok: true, sub: "web-ES256", admin: false });
    assert.deepEqual(results.importRefused, { ok: false, code: "invalid_key" });
    assert.deepEqual(results.verifyRefused, { ok: false, code: "bad_signature" });
  } finally {
    await browser.close();
  }
});
