// The revocation feed end to end, against a live latch: a verifier in Node,
// in workerd and in Chromium accepts a token, the user logs out, and within
// the feed's max-age + 1 s (on the verifier's clock, which the test moves)
// the same verifier refuses it with `session_revoked`. Forged and foreign
// feeds are refused; when the feed is unreachable, the caller's choice holds.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { join, extname, normalize } from "node:path";
import * as jose from "jose";
import { createRemoteVerifier } from "@latch/verifier";
import { packageDir } from "./installed.mjs";
import { startLatch } from "./latch.mjs";
import { startWorkerd } from "./workerd-run.mjs";
import { launchChromium } from "./chromium.mjs";

const here = new URL(".", import.meta.url).pathname;
const MAX_AGE = 5; // the feed's own Cache-Control max-age, and the verifiers' maxAgeSeconds

let latch;
let issuer;
before(async () => {
  latch = await startLatch();
  issuer = `${latch.base}/t/demo`;
  await latch.createTenant("foreign");
});
after(() => latch.stop());

/** A clock that follows real time, moved forward by the test. */
function movableClock() {
  let offset = 0;
  const clock = () => Date.now() / 1000 + offset;
  clock.advance = (seconds) => {
    offset += seconds;
  };
  return clock;
}

/** `fetch` that records what the verifier asked and can replace the feed's answers. */
function watchedFetch() {
  const seen = [];
  const watched = async (url, init) => {
    const href = String(url);
    if (href.includes("/.well-known/revocations") && watched.replace) {
      seen.push({ url: href, status: "replaced" });
      return watched.replace(href);
    }
    const response = await fetch(url, init);
    seen.push({ url: href, status: response.status, ifNoneMatch: init?.headers?.["if-none-match"] });
    return response;
  };
  watched.seen = seen;
  watched.replace = undefined;
  return watched;
}

const outcome = async (run) => {
  try {
    return { ok: true, sub: (await run()).sub };
  } catch (error) {
    return { ok: false, code: error.code ?? String(error) };
  }
};

test("Node: a logged-out session's token is refused within max-age + 1 s, fetched incrementally", async () => {
  const clock = movableClock();
  const fetchImpl = watchedFetch();
  const verifier = createRemoteVerifier(issuer, { audience: "demo", revocation: { maxAgeSeconds: MAX_AGE }, clock, fetch: fetchImpl });
  const leaving = await latch.register("demo", "node-leaving@example.com");
  const staying = await latch.register("demo", "node-staying@example.com");
  assert.deepEqual(await outcome(() => verifier.verify(leaving.access_token)), { ok: true, sub: leaving.user.id });

  await latch.logout("demo", leaving.access_token);
  clock.advance(MAX_AGE + 1);
  assert.deepEqual(await outcome(() => verifier.verify(leaving.access_token)), { ok: false, code: "session_revoked" });
  assert.deepEqual(await outcome(() => verifier.verify(staying.access_token)), { ok: true, sub: staying.user.id });

  // Later polls ask only for what ended after the cursor; an unchanged answer is a 304.
  clock.advance(MAX_AGE + 1);
  await verifier.verify(staying.access_token);
  clock.advance(MAX_AGE + 1);
  await verifier.verify(staying.access_token);
  const feeds = fetchImpl.seen.filter((request) => request.url.includes("/.well-known/revocations"));
  assert.equal(feeds[0].url, `${issuer}/.well-known/revocations`, "the first request takes the whole feed");
  assert.ok(feeds.slice(1).every((request) => request.url.includes("?since=")), JSON.stringify(feeds));
  assert.equal(feeds.at(-1).status, 304, JSON.stringify(feeds));
  assert.ok(feeds.at(-1).ifNoneMatch, "the tag of the last answer is sent");
  assert.deepEqual(await outcome(() => verifier.verify(leaving.access_token)), { ok: false, code: "session_revoked" });
});

/** Feeds a verifier must refuse, each with the codes that may say why. */
async function badFeeds(token) {
  const genuine = await (await fetch(`${issuer}/.well-known/revocations`)).text();
  const [header, payload, signature] = genuine.split(".");
  const claims = JSON.parse(Buffer.from(payload, "base64url"));
  const { kid } = JSON.parse(Buffer.from(header, "base64url"));
  // The genuine document with its entries removed, signature kept.
  const emptied = `${header}.${Buffer.from(JSON.stringify({ ...claims, revoked: [] })).toString("base64url")}.${signature}`;
  // A document signed by someone else's key under the tenant's kid.
  const stranger = await jose.generateKeyPair("EdDSA");
  const forged = await new jose.SignJWT({ ...claims, revoked: [] })
    .setProtectedHeader({ alg: "EdDSA", kid, typ: "latch-revocations+jwt" })
    .sign(stranger.privateKey);
  // Another tenant's genuine feed.
  const foreign = await (await fetch(`${latch.base}/t/foreign/.well-known/revocations`)).text();
  return [
    ["emptied", emptied, ["bad_signature"]],
    ["forged", forged, ["bad_signature"]],
    ["foreign", foreign, ["unknown_kid", "wrong_issuer"]],
    // The tenant's own access token offered as a feed.
    ["a token", token, ["wrong_type"]],
  ];
}

test("Node: forged and foreign feeds are refused and the last good copy stays", async () => {
  const clock = movableClock();
  const fetchImpl = watchedFetch();
  const verifier = createRemoteVerifier(issuer, { audience: "demo", revocation: { maxAgeSeconds: MAX_AGE }, clock, fetch: fetchImpl });
  const gone = await latch.register("demo", "node-gone@example.com");
  await latch.logout("demo", gone.access_token);
  assert.deepEqual(await outcome(() => verifier.verify(gone.access_token)), { ok: false, code: "session_revoked" });

  for (const [what, document, codes] of await badFeeds(gone.access_token)) {
    fetchImpl.replace = () => new Response(document, { status: 200, headers: { "content-type": "application/jwt" } });
    await assert.rejects(verifier.refreshRevocations(), (error) => codes.includes(error.code), what);
    clock.advance(MAX_AGE + 1);
    assert.deepEqual(await outcome(() => verifier.verify(gone.access_token)), { ok: false, code: "session_revoked" }, what);
  }
});

test("Node: an incremental answer for another cursor makes the verifier ask for the whole feed, once", async () => {
  const before = JSON.parse(Buffer.from((await (await fetch(`${issuer}/.well-known/revocations`)).text()).split(".")[1], "base64url"));
  const other = await latch.register("demo", "node-other@example.com");
  await latch.logout("demo", other.access_token);
  // A genuine document continuing a cursor this verifier never had.
  const stale = await (await fetch(`${issuer}/.well-known/revocations?since=${before.cursor}`)).text();

  const clock = movableClock();
  const fetchImpl = watchedFetch();
  const verifier = createRemoteVerifier(issuer, { audience: "demo", revocation: { maxAgeSeconds: MAX_AGE }, clock, fetch: fetchImpl });
  await verifier.refreshRevocations();
  let served = 0;
  fetchImpl.replace = (url) => {
    served += 1;
    return served === 1 ? new Response(stale) : fetch(url);
  };
  await verifier.refreshRevocations();
  const asked = fetchImpl.seen.filter((request) => request.url.includes("/.well-known/revocations")).map((request) => request.url);
  assert.equal(served, 2, JSON.stringify(asked));
  assert.ok(asked.at(-2).includes("?since="), "first the increment");
  assert.equal(asked.at(-1), `${issuer}/.well-known/revocations`, "then the whole feed");
  clock.advance(MAX_AGE + 1);
  assert.deepEqual(await outcome(() => verifier.verify(other.access_token)), { ok: false, code: "session_revoked" });

  // An answer that keeps continuing another cursor is refused, not followed forever.
  fetchImpl.replace = () => new Response(stale);
  await assert.rejects(verifier.refreshRevocations(), { code: "revocation_unavailable" });
});

test("Node: an unreachable feed keeps the last good copy, or fails closed when asked", async () => {
  const user = await latch.register("demo", "node-stale@example.com");
  for (const whenStale of ["keep", "reject"]) {
    const clock = movableClock();
    const fetchImpl = watchedFetch();
    const revocation = { maxAgeSeconds: MAX_AGE, maxStaleSeconds: 60, whenStale };
    const verifier = createRemoteVerifier(issuer, { audience: "demo", revocation, clock, fetch: fetchImpl });
    assert.equal((await outcome(() => verifier.verify(user.access_token))).ok, true);
    fetchImpl.replace = () => new Response("down", { status: 503 });
    clock.advance(MAX_AGE + 30);
    assert.equal((await outcome(() => verifier.verify(user.access_token))).ok, true, `${whenStale}: within the bound`);
    clock.advance(31);
    const beyond = await outcome(() => verifier.verify(user.access_token));
    if (whenStale === "keep") assert.deepEqual(beyond, { ok: true, sub: user.user.id });
    else assert.deepEqual(beyond, { ok: false, code: "revocation_unavailable" });
    fetchImpl.replace = undefined;
    clock.advance(1);
    assert.equal((await outcome(() => verifier.verify(user.access_token))).ok, true, `${whenStale}: back once the feed is`);
  }
});

test("Node: concurrent checks share one feed request, and a platform cache spares a cold isolate the fetch", async () => {
  const user = await latch.register("demo", "node-shared@example.com");
  const store = new Map();
  const cache = { get: async (key) => store.get(key), put: async (key, value) => void store.set(key, structuredClone(value)) };
  const clock = movableClock();
  const first = watchedFetch();
  const verifier = createRemoteVerifier(issuer, { audience: "demo", revocation: { maxAgeSeconds: MAX_AGE }, clock, fetch: first, cache });
  const results = await Promise.all(Array.from({ length: 20 }, () => outcome(() => verifier.verify(user.access_token))));
  assert.ok(results.every((result) => result.ok), JSON.stringify(results));
  const feedRequests = (fetchImpl) => fetchImpl.seen.filter((request) => request.url.includes("/.well-known/revocations")).length;
  assert.equal(feedRequests(first), 1);

  // A new isolate with the same cache: no request while the copy is fresh.
  const second = watchedFetch();
  const cold = createRemoteVerifier(issuer, { audience: "demo", revocation: { maxAgeSeconds: MAX_AGE }, clock, fetch: second, cache });
  assert.equal((await outcome(() => cold.verify(user.access_token))).ok, true);
  assert.equal(second.seen.length, 0, JSON.stringify(second.seen));
  // What the cache holds is used as the list: the session's end, once cached, is refused there too.
  await latch.logout("demo", user.access_token);
  clock.advance(MAX_AGE + 1);
  assert.deepEqual(await outcome(() => verifier.verify(user.access_token)), { ok: false, code: "session_revoked" });
  const third = watchedFetch();
  const later = createRemoteVerifier(issuer, { audience: "demo", revocation: { maxAgeSeconds: MAX_AGE }, clock, fetch: third, cache });
  assert.deepEqual(await outcome(() => later.verify(user.access_token)), { ok: false, code: "session_revoked" });
  assert.equal(feedRequests(third), 0);
});

test("Node: an issuer with a trailing slash is refused with a message that says so", () => {
  assert.throws(
    () => createRemoteVerifier(`${issuer}/`, { audience: "demo" }),
    (error) => error.code === "invalid_options" && /trailing slash/.test(error.message),
  );
});

test("workerd: a worker refuses a logged-out session's token within max-age + 1 s, and forged or foreign feeds", async () => {
  const worker = await startWorkerd(
    join(here, "revocation", "config.capnp.template"),
    { "worker.js": join(here, "revocation", "worker.js") },
    { ISSUER: issuer, AUDIENCE: "demo" },
  );
  try {
    const user = await latch.register("demo", "edge@example.com");
    const check = async () => (await fetch(worker.base, { headers: { authorization: `Bearer ${user.access_token}` } })).json();
    assert.deepEqual(await check(), { ok: true, sub: user.user.id });
    await latch.logout("demo", user.access_token);
    await fetch(`${worker.base}/advance?seconds=${MAX_AGE + 1}`);
    assert.deepEqual(await check(), { ok: false, code: "session_revoked" });
    for (const [what, document, codes] of await badFeeds(user.access_token)) {
      await fetch(`${worker.base}/forge`, { method: "POST", body: document });
      const refreshed = await (await fetch(`${worker.base}/refresh`)).json();
      assert.ok(!refreshed.ok && codes.includes(refreshed.code), `${what}: ${JSON.stringify(refreshed)}`);
      await fetch(`${worker.base}/advance?seconds=${MAX_AGE + 1}`);
      assert.deepEqual(await check(), { ok: false, code: "session_revoked" }, what);
    }
  } finally {
    await worker.stop();
  }
});

test("Chromium: a page of another origin refuses a logged-out session's token within max-age + 1 s, and forged or foreign feeds", async () => {
  const pkg = packageDir;
  const types = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html" };
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/") return res.writeHead(200, { "content-type": "text/html" }).end(readFileSync(join(here, "revocation", "page.html")));
    const file = normalize(join(pkg, path.slice("/pkg/".length)));
    if (!path.startsWith("/pkg/") || !file.startsWith(pkg)) return res.writeHead(404).end();
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" }).end(readFileSync(file));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (error) => errors.push(String(error)));
    await page.goto(`http://127.0.0.1:${server.address().port}/?issuer=${encodeURIComponent(issuer)}`);
    await page.waitForFunction(() => window.ready === true);
    const user = await latch.register("demo", "browser@example.com");
    assert.deepEqual(await page.evaluate((token) => window.check(token), user.access_token), { ok: true, sub: user.user.id });
    await latch.logout("demo", user.access_token);
    await page.evaluate((seconds) => window.advance(seconds), MAX_AGE + 1);
    assert.deepEqual(await page.evaluate((token) => window.check(token), user.access_token), { ok: false, code: "session_revoked" });
    for (const [what, document, codes] of await badFeeds(user.access_token)) {
      await page.evaluate((forged) => window.forge(forged), document);
      const refreshed = await page.evaluate(() => window.refresh());
      assert.ok(!refreshed.ok && codes.includes(refreshed.code), `${what}: ${JSON.stringify(refreshed)}`);
      await page.evaluate((seconds) => window.advance(seconds), MAX_AGE + 1);
      assert.deepEqual(await page.evaluate((token) => window.check(token), user.access_token), { ok: false, code: "session_revoked" }, what);
    }
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    server.close();
  }
});
