// The explicit `init(wasm)` entry through real bundlers, from the installed
// package: esbuild (ESM and IIFE), Vite and webpack builds load in Chromium,
// and an esbuild worker bundle runs in workerd. Each build must not warn.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, extname, normalize } from "node:path";
import * as esbuild from "esbuild";
import * as jose from "jose";
import { launchChromium, watchPage } from "./chromium.mjs";
import { startWorkerd } from "./workerd-run.mjs";
import "./installed.mjs";

const here = new URL(".", import.meta.url).pathname;
const sources = join(here, "bundlers");
const ISSUER = "https://auth.example/t/bundled";
const AUDIENCE = "bundled";

const keys = {};
const jwks = { keys: [] };
for (const alg of ["EdDSA", "ES256"]) {
  keys[alg] = await jose.generateKeyPair(alg, { extractable: true });
  jwks.keys.push({ ...(await jose.exportJWK(keys[alg].publicKey)), kid: alg, alg, use: "sig" });
}
const mint = (alg) =>
  new jose.SignJWT({ sub: `bundled-${alg}`, roles: ["user"], tid: "bundled", sid: "s", jti: "j", scope: "openid" })
    .setProtectedHeader({ alg, kid: alg, typ: "at+jwt" })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime("10m")
    .sign(keys[alg].privateKey);
const tokens = { EdDSA: await mint("EdDSA"), ES256: await mint("ES256") };
const [header, payload, signature] = tokens.EdDSA.split(".");
const altered = { ...JSON.parse(Buffer.from(payload, "base64url")), roles: ["admin"] };
const tampered = `${header}.${Buffer.from(JSON.stringify(altered)).toString("base64url")}.${signature}`;
const fixture = { issuer: ISSUER, audience: AUDIENCE, jwks, tokens, tampered };

const work = mkdtempSync(join(tmpdir(), "latch-bundlers-"));
after(() => rmSync(work, { recursive: true, force: true }));

let browser;
before(async () => {
  browser = await launchChromium();
});
after(() => browser?.close());

/** Serves `dir` with `page` at `/` and the fixture at `/fixture.js`; loads it in Chromium; returns window.results. */
async function loadInChromium(dir, page) {
  const types = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html" };
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/") return res.writeHead(200, { "content-type": "text/html" }).end(page);
    if (path === "/fixture.js") return res.writeHead(200, { "content-type": "text/javascript" }).end(`window.fixture = ${JSON.stringify(fixture)};`);
    const file = normalize(join(dir, path));
    if (!file.startsWith(dir)) return res.writeHead(403).end();
    let body;
    try {
      body = readFileSync(file);
    } catch {
      return res.writeHead(404).end();
    }
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" }).end(body);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const tab = await browser.newPage();
  try {
    const seen = await watchPage(tab);
    await tab.goto(`http://127.0.0.1:${server.address().port}/`);
    await tab.waitForFunction(() => window.results !== undefined);
    const results = await tab.evaluate(() => window.results);
    assert.deepEqual(seen.errors, []);
    return results;
  } finally {
    await tab.close();
    server.close();
  }
}

const expected = {
  beforeInit: { ok: false, code: "invalid_options" },
  eddsa: { ok: true, sub: "bundled-EdDSA" },
  es256: { ok: true, sub: "bundled-ES256" },
  tampered: { ok: false, code: "bad_signature" },
};

for (const format of ["esm", "iife"]) {
  test(`esbuild ${format.toUpperCase()}: the bundle and its emitted .wasm work in Chromium`, async () => {
    const outdir = join(work, `esbuild-${format}`);
    const result = await esbuild.build({
      entryPoints: [join(sources, "entry.js")],
      bundle: true,
      format,
      outdir,
      loader: { ".wasm": "file" },
      logLevel: "silent",
    });
    assert.deepEqual(result.warnings, []);
    assert.ok(readdirSync(outdir).some((name) => name.endsWith(".wasm")), "the .wasm is emitted");
    const script = format === "esm" ? '<script type="module" src="/entry.js"></script>' : '<script src="/entry.js"></script>';
    const page = `<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>esbuild</title></head><body><script src="/fixture.js"></script>${script}</body></html>`;
    assert.deepEqual(await loadInChromium(outdir, page), expected);
  });
}

test("Vite: a production build works in Chromium", async () => {
  const { build } = await import("vite");
  const outDir = join(work, "vite");
  const warnings = [];
  await build({
    root: sources,
    configFile: false,
    logLevel: "silent",
    build: { outDir, emptyOutDir: true, rollupOptions: { input: join(sources, "index.html"), onwarn: (warning) => warnings.push(String(warning.message ?? warning)) } },
  });
  assert.deepEqual(warnings, []);
  assert.deepEqual(await loadInChromium(outDir, readFileSync(join(outDir, "index.html"))), expected);
});

test("webpack: a production build with .wasm as an asset works in Chromium", async () => {
  const { default: webpack } = await import("webpack");
  const outdir = join(work, "webpack");
  const stats = await new Promise((resolve, reject) =>
    webpack(
      {
        mode: "production",
        context: sources,
        entry: "./entry.js",
        output: { path: outdir, filename: "entry.js", publicPath: "/" },
        module: { rules: [{ test: /\.wasm$/, type: "asset/resource" }] },
      },
      (error, stats) => (error ? reject(error) : resolve(stats)),
    ),
  );
  const info = stats.toJson({ all: false, errors: true, warnings: true });
  assert.deepEqual([info.errors, info.warnings], [[], []]);
  const page = '<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>webpack</title></head><body><script src="/fixture.js"></script><script src="/entry.js"></script></body></html>';
  assert.deepEqual(await loadInChromium(outdir, page), expected);
});

test("esbuild worker bundle: runs in workerd with the .wasm as a module", async () => {
  const outdir = join(work, "worker");
  const result = await esbuild.build({
    entryPoints: [join(sources, "worker.js")],
    bundle: true,
    format: "esm",
    outdir,
    loader: { ".wasm": "copy" },
    assetNames: "[name]",
    logLevel: "silent",
  });
  assert.deepEqual(result.warnings, []);
  writeFileSync(join(outdir, "jwks.json"), JSON.stringify(jwks));
  const files = Object.fromEntries(["worker.js", "latch_verifier_bg.wasm", "jwks.json"].map((name) => [name, join(outdir, name)]));
  const worker = await startWorkerd(join(sources, "worker.capnp.template"), files, { ISSUER, AUDIENCE });
  try {
    for (const alg of ["EdDSA", "ES256"]) {
      const response = await fetch(worker.base, { headers: { authorization: `Bearer ${tokens[alg]}` } });
      assert.deepEqual(await response.json(), { ok: true, sub: `bundled-${alg}` }, alg);
    }
    const refused = await fetch(worker.base, { headers: { authorization: `Bearer ${tampered}` } });
    assert.deepEqual(await refused.json(), { ok: false, code: "bad_signature" });
  } finally {
    await worker.stop();
  }
});
