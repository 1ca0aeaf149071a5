// @latch/verifier beside jose where EdDSA cannot go to node:crypto: in
// Chromium (headless, a page script) and in workerd, per algorithm, on the
// same tokens in the same runtime. jose uses WebCrypto there; the package
// uses WebCrypto for ES256/RS256 (and EdDSA where WebCrypto has Ed25519) on
// verifyAsync, and wasm for everything on verify.
// Needs verifier-wasm/build.sh first and `npm install` in benches/.
// Usage: node benches/verifier-edge.mjs [seconds per algorithm and runtime, default 6]
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import * as esbuild from "esbuild";
import * as jose from "jose";
import { chromium } from "playwright-core";

const here = new URL(".", import.meta.url).pathname;
const seconds = Number(process.argv[2] ?? 6);
const IMPLS = ["jose", "latchAsync", "latchSync"];
const ALGS = ["EdDSA", "ES256", "RS256", "HS256"];

// Same tokens everywhere: minted here.
const issuer = "https://auth.example/t/bench";
const audience = "bench";
const jwks = { keys: [] };
const tokens = {};
const secret = jose.base64url.encode(crypto.getRandomValues(new Uint8Array(32)));
for (const alg of ALGS) {
  let key;
  if (alg === "HS256") {
    key = jose.base64url.decode(secret);
    jwks.keys.push({ kty: "oct", k: secret, kid: alg, alg });
  } else {
    const pair = await jose.generateKeyPair(alg, { extractable: true });
    key = pair.privateKey;
    jwks.keys.push({ ...(await jose.exportJWK(pair.publicKey)), kid: alg, alg, use: "sig" });
  }
  tokens[alg] = await new jose.SignJWT({ sub: "u", tid: "bench", sid: "s", jti: "j", roles: ["user"], scope: "openid" })
    .setProtectedHeader({ alg, kid: alg, typ: "at+jwt" })
    .setIssuer(issuer)
    .setAudience(audience)
    .setIssuedAt()
    .setExpirationTime("1h")
    .sign(key);
}
const fixture = { issuer, audience, jwks, secret, tokens };

const work = mkdtempSync(join(tmpdir(), "latch-edge-bench-"));
const build = (entry, outdir, extra) =>
  esbuild.build({ entryPoints: [join(here, "edge", entry)], bundle: true, format: "esm", outdir, logLevel: "warning", ...extra });
await build("page.js", join(work, "page"), { platform: "browser", loader: { ".wasm": "file" } });
await build("worker.js", join(work, "worker"), {
  platform: "browser",
  conditions: ["workerd", "worker", "browser"],
  loader: { ".wasm": "copy" },
  assetNames: "[name]",
});

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/**
 * Interleaves batches of every implementation for `alg` until `seconds`
 * have passed; `timeBatch(impl, n)` returns milliseconds. Batches are sized
 * to about 50 ms each, so drift on a shared machine hits all three alike.
 */
async function compare(alg, timeBatch) {
  const sizes = {};
  for (const impl of IMPLS) {
    const ms = await timeBatch(impl, 20);
    sizes[impl] = Math.max(5, Math.round((20 * 50) / Math.max(ms, 0.1)));
  }
  const rates = Object.fromEntries(IMPLS.map((impl) => [impl, []]));
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline || rates.jose.length < 5) {
    for (const impl of IMPLS) {
      const ms = await timeBatch(impl, sizes[impl]);
      rates[impl].push((sizes[impl] * 1000) / ms);
    }
  }
  return Object.fromEntries(IMPLS.map((impl) => [impl, median(rates[impl])]));
}

function table(title, rows) {
  const fmt = (n) => Math.round(n).toLocaleString("en-US");
  console.log(`\n${title}\n`);
  console.log("| alg | jose jwtVerify ops/s | latch verifyAsync ops/s | ratio | latch verify (sync) ops/s | ratio |");
  console.log("|---|---|---|---|---|---|");
  for (const [alg, r] of Object.entries(rows)) {
    console.log(`| ${alg} | ${fmt(r.jose)} | ${fmt(r.latchAsync)} | ${(r.latchAsync / r.jose).toFixed(2)} | ${fmt(r.latchSync)} | ${(r.latchSync / r.jose).toFixed(2)} |`);
  }
}

// Chromium.
{
  const dir = join(work, "page");
  const types = { ".js": "text/javascript", ".wasm": "application/wasm" };
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/") {
      return res
        .writeHead(200, { "content-type": "text/html" })
        .end('<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>bench</title></head><body><script type="module" src="/page.js"></script></body></html>');
    }
    const file = normalize(join(dir, path));
    let body;
    try {
      body = readFileSync(file);
    } catch {
      return res.writeHead(404).end();
    }
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" }).end(body);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => window.bench !== undefined);
  await page.evaluate((f) => window.bench.setup(f), fixture);
  const version = browser.version();
  const rows = {};
  for (const alg of ALGS) {
    rows[alg] = await compare(alg, (impl, n) => page.evaluate(([i, a, count]) => window.bench.time(i, a, count), [impl, alg, n]));
  }
  await browser.close();
  server.close();
  table(`Chromium ${version} (headless, page script), ${seconds} s per algorithm, median of interleaved ~50 ms batches`, rows);
}

// workerd.
{
  const dir = join(work, "worker");
  writeFileSync(join(dir, "fixture.json"), JSON.stringify(fixture));
  const port = await new Promise((resolve) => {
    const probe = createNetServer().listen(0, "127.0.0.1", () => {
      const { port: free } = probe.address();
      probe.close(() => resolve(free));
    });
  });
  writeFileSync(join(dir, "config.capnp"), readFileSync(join(here, "edge", "worker.capnp.template"), "utf8").replace("@PORT@", String(port)));
  const workerd = spawn(join(here, "node_modules", ".bin", "workerd"), ["serve", join(dir, "config.capnp")], { stdio: "inherit" });
  const base = `http://127.0.0.1:${port}`;
  for (;;) {
    try {
      await fetch(`${base}/run?impl=jose&alg=EdDSA&n=1`);
      break;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  const version = JSON.parse(readFileSync(join(here, "node_modules", "workerd", "package.json"), "utf8")).version;
  const rows = {};
  for (const alg of ALGS) {
    // Timed from outside: workerd's clocks stand still while a request computes.
    rows[alg] = await compare(alg, async (impl, n) => {
      const start = performance.now();
      const response = await fetch(`${base}/run?impl=${impl}&alg=${alg}&n=${n}`);
      await response.text();
      return performance.now() - start;
    });
  }
  workerd.kill();
  table(`workerd ${version}, ${seconds} s per algorithm, median of interleaved ~50 ms batches (one request each, timed by the caller)`, rows);
}
rmSync(work, { recursive: true, force: true });
