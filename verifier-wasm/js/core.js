// The public API of @latch/verifier. Every verification rule runs in the
// WebAssembly module built from latch-shared (the server's own crate); this
// file only adapts types, hands signature checks to node:crypto (Node) or
// ES256/RS256 ones to WebCrypto (verifyAsync elsewhere), and fetches and caches
// remote key sets.
import { Failure, WasmVerifier, decodeUnverified as wasmDecodeUnverified } from "./latch_verifier.js";

/** A token or key set was rejected; `code` is stable (`expired`, `bad_signature`, ...). */
export class VerifyError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "VerifyError";
    this.code = code;
  }
}

/** Turns what the wasm module throws into a VerifyError. */
function rethrow(error) {
  if (error instanceof Failure) {
    const converted = new VerifyError(error.code, error.message);
    error.free();
    throw converted;
  }
  throw error;
}

const nowSeconds = () => Date.now() / 1000;

/** Whether an entry point has loaded the wasm (the `init` entry loads it when asked). */
let initialized = false;

/** Used by an entry point only: not part of the package's exports. */
export function markInitialized() {
  initialized = true;
}

function assertInitialized() {
  if (!initialized) {
    throw new VerifyError("invalid_options", 'the wasm is not loaded yet: await init(wasm) from "@latch/verifier/init" first');
  }
}

/**
 * A synchronous signature check supplied by the runtime's entry point (Node
 * installs one on node:crypto): `{ algorithms, importKey(jwk), verify(alg, key,
 * signingInput, signature) }`. The wasm module has already checked the
 * signature's form (for Ed25519: canonical S and R, no small-order points), so
 * the native check accepts exactly what the wasm one would.
 */
let native = null;

/** Used by an entry point only: not part of the package's exports. */
export function installSignatureCheck({ algorithms, importKey, verify }) {
  native = { algorithms: new Set(algorithms), importKey, verify };
}

/**
 * Whether WebCrypto checks Ed25519 here: unknown until the first EdDSA
 * token; a runtime that refuses the key or the check keeps EdDSA in wasm.
 */
let webCryptoEd25519;

/** Whether verifyAsync hands `alg`'s signatures to WebCrypto (where there is no native check). */
function delegated(alg) {
  return alg === "ES256" || alg === "RS256" || (alg === "EdDSA" && webCryptoEd25519 !== false);
}

/**
 * The header's `alg`, read only to choose a path. It is never trusted: the wasm
 * module binds every key to its own algorithm and rejects a mismatch. A
 * tenant's tokens share their header segment, so the answer is memoised.
 */
const claimedAlgorithms = new Map();
function claimedAlgorithm(token) {
  const end = token.indexOf(".");
  if (end <= 0 || end > 512) return undefined;
  const segment = token.slice(0, end);
  let alg = claimedAlgorithms.get(segment);
  if (alg === undefined) {
    try {
      alg = String(JSON.parse(atob(segment.replace(/-/g, "+").replace(/_/g, "/"))).alg);
    } catch {
      alg = "";
    }
    if (claimedAlgorithms.size >= 256) claimedAlgorithms.clear();
    claimedAlgorithms.set(segment, alg);
  }
  return alg;
}

const JWK_MEMBERS = ["kty", "crv", "x", "y", "n", "e"];

/** The public JWK of the key at `index` of a wasm verifier (its members that are set). */
function jwkAt(inner, index) {
  const values = inner.jwk(index);
  return Object.fromEntries(JWK_MEMBERS.map((name, i) => [name, values[i]]).filter(([, value]) => value !== undefined));
}

const WEBCRYPTO = {
  EdDSA: { import: { name: "Ed25519" }, verify: { name: "Ed25519" } },
  ES256: { import: { name: "ECDSA", namedCurve: "P-256" }, verify: { name: "ECDSA", hash: "SHA-256" } },
  RS256: { import: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, verify: { name: "RSASSA-PKCS1-v1_5" } },
};

/** latch-shared's message for `bad_signature`, for a signature WebCrypto refused. */
const BAD_SIGNATURE = "the token's signature does not verify";

const webCryptoFailure = (error) =>
  new VerifyError("bad_signature", `WebCrypto could not check the signature: ${error?.message ?? error}`);

/** Verifies latch access tokens against a key set, with the server's rules. */
export class Verifier {
  #inner;
  #cryptoKeys = new Map();
  #nativeKeys = new Map();

  /**
   * @param jwks a JWKS object or its JSON text (an HS256 secret as an `oct` JWK works too)
   * @param options `{ issuer, audience, leewaySeconds?, algorithms? }`
   */
  constructor(jwks, options) {
    const { issuer, audience, leewaySeconds, algorithms } = options ?? {};
    if (typeof issuer !== "string" || audience === undefined) {
      throw new VerifyError("invalid_options", "issuer and audience are required");
    }
    assertInitialized();
    const audiences = Array.isArray(audience) ? audience : [audience];
    const text = typeof jwks === "string" ? jwks : JSON.stringify(jwks);
    try {
      this.#inner = new WasmVerifier(text, issuer, audiences, leewaySeconds, algorithms ?? []);
    } catch (error) {
      rethrow(error);
    }
  }

  /**
   * Verifies synchronously: in wasm, except that where the runtime offers a
   * native synchronous signature check (Node), asymmetric signatures use it.
   */
  verify(token, now = nowSeconds()) {
    token = String(token);
    try {
      const alg = native && claimedAlgorithm(token);
      if (alg && native.algorithms.has(alg)) {
        // prepare binds the key to its own algorithm and fails on any other;
        // finish applies the claims rules to what was prepared, not again to the token.
        const check = this.#inner.prepare(token);
        const index = check.keyIndex;
        let key = this.#nativeKeys.get(index);
        if (key === undefined) {
          key = native.importKey(jwkAt(this.#inner, index));
          this.#nativeKeys.set(index, key);
        }
        const valid = native.verify(alg, key, check.signingInput, check.signature);
        return JSON.parse(check.finish(this.#inner, now, valid));
      }
      return JSON.parse(this.#inner.verify(token, now));
    } catch (error) {
      rethrow(error);
    }
  }

  /**
   * Verifies every algorithm; EdDSA, ES256 and RS256 signatures go to
   * WebCrypto where the runtime has it (EdDSA only where WebCrypto has
   * Ed25519), every other rule stays in wasm.
   */
  async verifyAsync(token, now = nowSeconds()) {
    token = String(token);
    const subtle = globalThis.crypto?.subtle;
    const alg = claimedAlgorithm(token);
    if (native || !subtle || !delegated(alg)) {
      return this.verify(token, now);
    }
    let check;
    try {
      check = this.#inner.prepare(token);
    } catch (error) {
      rethrow(error);
    }
    // prepare bound the key to its one algorithm: it is `alg`.
    const algorithm = WEBCRYPTO[alg];
    // WebCrypto may refuse a key or a check (a runtime without the curve, a
    // malformed input): that is a failed verification with a code, like any
    // other, except that a runtime without Ed25519 keeps EdDSA in wasm.
    let verifying;
    try {
      const index = check.keyIndex;
      const key = this.#cryptoKeys.get(index) ?? (await this.#importKey(index, algorithm));
      verifying = subtle.verify(algorithm.verify, key, check.signature, check.signingInput);
    } catch (error) {
      check.free();
      if (alg === "EdDSA" && webCryptoEd25519 === undefined) {
        webCryptoEd25519 = false;
        return this.verify(token, now);
      }
      throw error instanceof VerifyError ? error : webCryptoFailure(error);
    }
    // The claims are checked while WebCrypto checks the signature (on its
    // own thread where the runtime has one); a bad signature still wins.
    let claims;
    let refused;
    try {
      claims = JSON.parse(check.finish(this.#inner, now, true));
    } catch (error) {
      refused = error;
    }
    let valid;
    try {
      valid = await verifying;
    } catch (error) {
      if (alg === "EdDSA" && webCryptoEd25519 === undefined) {
        webCryptoEd25519 = false;
        return this.verify(token, now);
      }
      throw webCryptoFailure(error);
    }
    if (alg === "EdDSA") webCryptoEd25519 = true;
    if (!valid) throw new VerifyError("bad_signature", BAD_SIGNATURE);
    if (refused) rethrow(refused);
    return claims;
  }

  /** Imports the key at `keyIndex` into WebCrypto, once (callers look in the map first). */
  async #importKey(keyIndex, algorithm) {
    let key;
    try {
      key = await globalThis.crypto.subtle.importKey("jwk", jwkAt(this.#inner, keyIndex), algorithm.import, false, ["verify"]);
    } catch (error) {
      throw new VerifyError("invalid_key", `WebCrypto refused the key: ${error?.message ?? error}`);
    }
    this.#cryptoKeys.set(keyIndex, key);
    return key;
  }

  /** Verifies a revocation feed of this issuer with this key set; returns its payload. */
  verifyRevocationFeed(document) {
    try {
      return JSON.parse(this.#inner.verifyRevocationFeed(String(document)));
    } catch (error) {
      rethrow(error);
    }
  }

  /** Releases the wasm memory of this verifier. */
  free() {
    this.#inner.free();
  }
}

/** Decodes header and payload without verifying anything. Never base an access decision on it. */
export function decodeUnverified(token) {
  assertInitialized();
  try {
    const [header, payload] = wasmDecodeUnverified(String(token));
    return { header: JSON.parse(header), payload: JSON.parse(payload) };
  } catch (error) {
    rethrow(error);
  }
}

/** True if the claims carry `role`. */
export function hasRole(claims, role) {
  return Array.isArray(claims?.roles) && claims.roles.includes(role);
}

/** True if the space-separated `scope` claim contains `scope`. */
export function hasScope(claims, scope) {
  return typeof claims?.scope === "string" && claims.scope.split(" ").includes(scope);
}

/** Whole seconds until `exp` (zero or negative once expired). */
export function expiresIn(claims, now = nowSeconds()) {
  return Math.floor(claims.exp - now);
}

function maxAge(headers) {
  const control = headers.get("cache-control") ?? "";
  if (/\bno-store\b|\bno-cache\b/.test(control)) return 0;
  const match = /\bmax-age=(\d+)/.exec(control);
  return match ? Number(match[1]) : 300;
}

const asVerifyError = (error, code) =>
  error instanceof VerifyError ? error : new VerifyError(code, String(error?.message ?? error));

/**
 * The sessions a tenant's revocation feed lists (docs/revocation-feed.md):
 * `sid` -> when the entry may be dropped. Kept fresh by `refresh`, which
 * fetches only what ended after its cursor once it has one.
 */
class RevokedSessions {
  #entries = new Map();
  cursor = undefined;
  fetchedAt = -Infinity;

  static fromCache(value) {
    const set = new RevokedSessions();
    set.#entries = new Map(value.entries);
    set.cursor = value.cursor;
    set.fetchedAt = value.fetchedAt;
    return set;
  }

  toCache() {
    return { entries: [...this.#entries], cursor: this.cursor, fetchedAt: this.fetchedAt };
  }

  has(sid, now) {
    const until = this.#entries.get(sid);
    return until !== undefined && until >= now;
  }

  /** Applies a verified feed payload; false if it continues another cursor than ours. */
  apply(feed, now) {
    if (typeof feed.cursor !== "string" || !Array.isArray(feed.revoked)) {
      throw new VerifyError("invalid_claim", "the revocation feed lacks cursor or revoked");
    }
    if (feed.since !== undefined && feed.since !== this.cursor) return false;
    if (feed.since === undefined) this.#entries = new Map();
    for (const entry of feed.revoked) {
      const [sid, , until] = Array.isArray(entry) ? entry : [];
      if (typeof sid !== "string" || !Number.isFinite(until)) {
        throw new VerifyError("invalid_claim", "a revocation feed entry is not [sid, ended_at, exp]");
      }
      this.#entries.set(sid, until);
    }
    for (const [sid, until] of this.#entries) if (until < now) this.#entries.delete(sid);
    this.cursor = feed.cursor;
    this.fetchedAt = now;
    return true;
  }
}

/**
 * A verifier for `issuer` that finds its JWKS through the discovery document.
 * It caches the key set for its `Cache-Control` max-age, shares one fetch
 * between concurrent callers, refetches on an unknown `kid` at most once per
 * `cooldownSeconds`, keeps the last good key set when a refetch fails, and can
 * keep the key set in a platform cache (`cache: { get(key), put(key, value) }`)
 * so short-lived edge isolates do not refetch on every cold start.
 *
 * With `revocation`, it also follows the tenant's revocation feed and refuses
 * tokens of sessions that have ended (`session_revoked`): see the README.
 */
export function createRemoteVerifier(issuer, options = {}) {
  const {
    audience,
    leewaySeconds,
    algorithms,
    cooldownSeconds = 30,
    cache,
    fetch: fetchImpl = globalThis.fetch.bind(globalThis),
    clock = nowSeconds,
    revocation,
  } = options;
  if (typeof issuer !== "string" || !/^https?:\/\/[^/]/.test(issuer)) {
    throw new VerifyError("invalid_options", `issuer must be an http(s) URL such as https://auth.example/t/acme, not ${JSON.stringify(issuer)}`);
  }
  if (issuer.endsWith("/")) {
    throw new VerifyError(
      "invalid_options",
      `issuer ${issuer} ends with "/": a latch issuer is {public_url}/t/{tenant} with no trailing slash, exactly as in its tokens' iss`,
    );
  }
  const feedOptions = revocation && revocationOptions(revocation);
  const cacheKey = `latch-jwks:${issuer}`;
  let current; // { verifier, expiresAt, feedUri }
  let inFlight;
  let lastFetch = -Infinity;

  const build = (jwks, expiresAt, feedUri) => ({
    verifier: new Verifier(jwks, { issuer, audience, leewaySeconds, algorithms }),
    expiresAt,
    feedUri,
  });

  async function fetchKeySet() {
    lastFetch = clock();
    const discoveryResponse = await fetchImpl(`${issuer}/.well-known/openid-configuration`);
    if (!discoveryResponse.ok) {
      throw new VerifyError("jwks_unavailable", `discovery at ${issuer}/.well-known/openid-configuration answered ${discoveryResponse.status}`);
    }
    const discovery = await discoveryResponse.json();
    if (discovery.issuer !== issuer) {
      throw new VerifyError("wrong_issuer", `discovery names issuer ${discovery.issuer}, expected ${issuer}`);
    }
    const jwksResponse = await fetchImpl(discovery.jwks_uri);
    if (!jwksResponse.ok) throw new VerifyError("jwks_unavailable", `JWKS answered ${jwksResponse.status}`);
    const jwks = await jwksResponse.json();
    const expiresAt = clock() + maxAge(jwksResponse.headers);
    const feedUri = discovery.latch_revocation_feed_uri;
    const next = build(jwks, expiresAt, feedUri);
    if (cache) await cache.put(cacheKey, { jwks, expiresAt, feedUri });
    // The previous verifier may still be in use by a concurrent call; the glue's
    // finalizer frees it once nothing refers to it.
    current = next;
    return next;
  }

  /** One fetch at a time; concurrent callers share it. A failure keeps the last good key set. */
  function refetch() {
    inFlight ??= fetchKeySet().finally(() => {
      inFlight = undefined;
    });
    return inFlight.catch((error) => {
      if (current) return current;
      throw asVerifyError(error, "jwks_unavailable");
    });
  }

  async function keySet() {
    if (!current && cache) {
      const cached = await cache.get(cacheKey);
      if (cached && cached.expiresAt > clock()) current = build(cached.jwks, cached.expiresAt, cached.feedUri);
    }
    if (current && current.expiresAt > clock()) return current;
    return refetch();
  }

  const feed = feedOptions && revocationFeed(feedOptions);

  function revocationFeed({ maxAgeSeconds, maxStaleSeconds, whenStale }) {
    const feedKey = `latch-revocations:${issuer}`;
    let sessions; // RevokedSessions, once one feed was verified
    let feedInFlight;
    let lastAttempt = -Infinity;
    let etag; // of the last answer, with the URL it answered
    let etagUrl;

    /** Fetches what ended since our cursor (`whole`: the whole feed) and applies it. */
    async function fetchFeed(whole = false) {
      lastAttempt = clock();
      const keys = await keySet();
      if (!keys.feedUri) throw new VerifyError("revocation_unavailable", `discovery of ${issuer} names no revocation feed`);
      const cursor = whole ? undefined : sessions?.cursor;
      const url = cursor === undefined ? keys.feedUri : `${keys.feedUri}?since=${encodeURIComponent(cursor)}`;
      const response = await fetchImpl(url, etagUrl === url && etag ? { headers: { "if-none-match": etag } } : undefined);
      const now = clock();
      if (response.status === 304 && sessions) {
        sessions.fetchedAt = now;
      } else {
        if (!response.ok) throw new VerifyError("revocation_unavailable", `the revocation feed answered ${response.status}`);
        const document = await response.text();
        let payload;
        try {
          payload = keys.verifier.verifyRevocationFeed(document);
        } catch (error) {
          // Signed by a key newer than our key set: fetch the keys once, then judge.
          if (error?.code !== "unknown_kid" || clock() - lastFetch < cooldownSeconds) throw error;
          payload = (await refetch()).verifier.verifyRevocationFeed(document);
        }
        const next = sessions ? RevokedSessions.fromCache(sessions.toCache()) : new RevokedSessions();
        if (!next.apply(payload, now)) {
          // A document continuing another cursor than ours (an older cached
          // answer): ask for the whole feed, once; the last good copy stays meanwhile.
          if (whole) throw new VerifyError("revocation_unavailable", "the revocation feed answered a partial document to a request for the whole");
          return fetchFeed(true);
        }
        sessions = next;
        etag = response.headers.get("etag") ?? undefined;
        etagUrl = url;
      }
      if (cache) await cache.put(feedKey, sessions.toCache());
      return sessions;
    }

    /** One feed request at a time; concurrent callers share it. */
    function refresh() {
      feedInFlight ??= fetchFeed().finally(() => {
        feedInFlight = undefined;
      });
      return feedInFlight;
    }

    /** The sessions to refuse, fetching when the copy is older than maxAgeSeconds. */
    async function current() {
      const now = clock();
      if (!sessions && cache) {
        const cached = await cache.get(feedKey);
        if (cached && now - cached.fetchedAt <= maxAgeSeconds) sessions = RevokedSessions.fromCache(cached);
      }
      const age = now - (sessions?.fetchedAt ?? -Infinity);
      // Past half its age the copy is renewed in the background; past its
      // age a verification waits for the renewal (shared, one at a time),
      // unless the last attempt failed within the second.
      if (age > maxAgeSeconds / 2 && now - lastAttempt >= 1) {
        const renewal = refresh();
        if (age > maxAgeSeconds) {
          try {
            return await renewal;
          } catch {
            // judged below
          }
        } else {
          renewal.catch(() => {});
        }
      }
      if (sessions && now - sessions.fetchedAt <= maxAgeSeconds) return sessions;
      if (whenStale === "reject" && (!sessions || now - sessions.fetchedAt > maxAgeSeconds + maxStaleSeconds)) {
        throw new VerifyError("revocation_unavailable", `the revocation feed of ${issuer} could not be refreshed for over ${maxStaleSeconds} s past its age`);
      }
      return sessions;
    }

    return { current, refresh };
  }

  async function checked(claims, now) {
    if (!feed) return claims;
    const sessions = await feed.current();
    if (sessions?.has(claims.sid, now)) {
      throw new VerifyError("session_revoked", "the token's session has ended (logout, password change, disable or revocation)");
    }
    return claims;
  }

  async function verify(token, now) {
    const at = now ?? clock();
    const { verifier } = await keySet();
    let claims;
    try {
      claims = await verifier.verifyAsync(token, at);
    } catch (error) {
      if (error?.code !== "unknown_kid" || clock() - lastFetch < cooldownSeconds) throw error;
      const { verifier: refreshed } = await refetch();
      claims = await refreshed.verifyAsync(token, at);
    }
    return checked(claims, at);
  }

  return {
    verify,
    verifyAsync: verify,
    /** Fetches the key set now (shared with any fetch in flight). */
    refresh: refetch,
    /** Fetches the revocation feed now; rejects with the reason if it cannot (the last good copy stays). */
    refreshRevocations() {
      if (!feed) return Promise.reject(new VerifyError("invalid_options", "this verifier was created without revocation"));
      return feed.refresh().then(() => undefined);
    },
  };
}

function revocationOptions({ maxAgeSeconds = 5, maxStaleSeconds = 300, whenStale = "keep" } = {}) {
  const seconds = (value, name) => {
    if (!Number.isFinite(value) || value < 0) throw new VerifyError("invalid_options", `revocation.${name} must be a number of seconds`);
    return value;
  };
  if (whenStale !== "keep" && whenStale !== "reject") {
    throw new VerifyError("invalid_options", 'revocation.whenStale must be "keep" or "reject"');
  }
  return { maxAgeSeconds: seconds(maxAgeSeconds, "maxAgeSeconds"), maxStaleSeconds: seconds(maxStaleSeconds, "maxStaleSeconds"), whenStale };
}
