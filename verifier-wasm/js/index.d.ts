/** Stable codes of verification failures (the same as the latch server's `token_error`). */
export type VerifyErrorCode =
  | "too_large"
  | "malformed"
  | "duplicate_member"
  | "alg_not_allowed"
  | "unsupported_crit"
  | "wrong_type"
  | "unknown_kid"
  | "bad_signature"
  | "expired"
  | "not_yet_valid"
  | "wrong_issuer"
  | "wrong_audience"
  | "missing_claim"
  | "invalid_claim"
  | "invalid_key"
  | "invalid_options"
  | "jwks_unavailable"
  /** The token's session has ended (the tenant's revocation feed lists it). */
  | "session_revoked"
  /** `revocation.whenStale` is reject and the feed could not be refreshed in time. */
  | "revocation_unavailable";

/** A token or key set was rejected. */
export class VerifyError extends Error {
  readonly name: "VerifyError";
  readonly code: VerifyErrorCode;
}

export type Algorithm = "EdDSA" | "ES256" | "RS256" | "HS256";

/** Claims of a latch access token (tokens of other issuers may carry others). */
export interface Claims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  nbf: number;
  jti: string;
  /** Tenant id. */
  tid: string;
  /** Session id. */
  sid: string;
  roles: string[];
  /** Space-separated scopes. */
  scope: string;
  /** Only where the tenant opts in. */
  email?: string;
  /** Whether `email` was verified; present exactly when `email` is. */
  email_verified?: boolean;
  [claim: string]: unknown;
}

export interface Jwk {
  kty: string;
  kid?: string;
  alg?: string;
  use?: string;
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
  k?: string;
}

export interface Jwks {
  keys: Jwk[];
}

export interface VerifierOptions {
  /** Must equal the token's `iss` exactly: `{public_url}/t/{tenant}`. */
  issuer: string;
  /** The token's `aud` must contain one of these. */
  audience: string | string[];
  /** Clock leeway for `exp` and `nbf`, at most 300 (default 30). */
  leewaySeconds?: number;
  /** Restrict the accepted algorithms (default: all four). */
  algorithms?: Algorithm[];
}

export class Verifier {
  constructor(jwks: Jwks | string, options: VerifierOptions);
  /** Synchronous, every algorithm, the server's rules in wasm (in Node, signatures by node:crypto); `now` in seconds (default: the current time). */
  verify(token: string, now?: number): Claims;
  /** Every algorithm; ES256/RS256 signatures go to WebCrypto where available, EdDSA too where WebCrypto has Ed25519. */
  verifyAsync(token: string, now?: number): Promise<Claims>;
  /** Verifies a revocation feed document of this issuer with this key set; returns its payload. */
  verifyRevocationFeed(document: string): RevocationFeed;
  /** Releases the wasm memory now (otherwise freed when garbage-collected). */
  free(): void;
}

export interface Decoded {
  header: { alg: string; kid?: string; typ?: string; [member: string]: unknown };
  payload: Partial<Claims> & Record<string, unknown>;
}

/** Decodes without verifying. Never base an access decision on it. */
export function decodeUnverified(token: string): Decoded;
export function hasRole(claims: Pick<Claims, "roles">, role: string): boolean;
export function hasScope(claims: Pick<Claims, "scope">, scope: string): boolean;
/** Whole seconds until `exp`; zero or negative once expired. */
export function expiresIn(claims: Pick<Claims, "exp">, now?: number): number;

/**
 * Where a remote verifier may keep what it fetched between isolates (e.g. a
 * platform cache): the key set under `latch-jwks:{issuer}` and, with
 * `revocation`, the feed's state under `latch-revocations:{issuer}`. Values
 * are plain JSON-compatible objects.
 */
export interface JwksCache {
  get(key: string): Promise<any>;
  put(key: string, value: any): Promise<void>;
}

/** The payload of a tenant's revocation feed (docs/revocation-feed.md in the latch repository). */
export interface RevocationFeed {
  iss: string;
  /** Where the next incremental request starts: `?since={cursor}`. */
  cursor: string;
  /** Present on an incremental document: the cursor it continues. */
  since?: string;
  /** `[sid, ended_at, exp]`: a session, when it ended, when the entry may be dropped. */
  revoked: [string, number, number][];
}

export interface RevocationOptions {
  /** The oldest copy of the feed a verification may use, in seconds (default 5, the feed's own max-age). Past half of it the copy is renewed in the background. */
  maxAgeSeconds?: number;
  /** With `whenStale: "reject"`: how long past `maxAgeSeconds` a copy that cannot be refreshed is still used (default 300). */
  maxStaleSeconds?: number;
  /** When the feed cannot be refreshed: `"keep"` the last good copy (default; tokens then stay valid until `exp`, as without a feed) or `"reject"` every token with `revocation_unavailable` once the copy is older than `maxAgeSeconds + maxStaleSeconds`. */
  whenStale?: "keep" | "reject";
}

export interface RemoteVerifierOptions extends Omit<VerifierOptions, "issuer"> {
  /** Follow the tenant's revocation feed and refuse tokens of ended sessions (`session_revoked`). */
  revocation?: RevocationOptions;
  /** Minimum seconds between refetches caused by an unknown `kid` (default 30). */
  cooldownSeconds?: number;
  cache?: JwksCache;
  fetch?: typeof fetch;
  /** Seconds since the epoch (tests). */
  clock?: () => number;
}

export interface RemoteVerifier {
  verify(token: string, now?: number): Promise<Claims>;
  verifyAsync(token: string, now?: number): Promise<Claims>;
  /** Fetch the key set now. */
  refresh(): Promise<unknown>;
  /** Fetch the revocation feed now; rejects with a `VerifyError` if it cannot be fetched or does not verify (the last good copy stays). */
  refreshRevocations(): Promise<void>;
}

/** A verifier that fetches `{issuer}/.well-known/openid-configuration` and its JWKS. */
export function createRemoteVerifier(issuer: string, options: RemoteVerifierOptions): RemoteVerifier;
