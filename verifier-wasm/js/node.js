// Node entry point: Node compiles wasm from bytes, read next to this file, and
// checks ES256/RS256 signatures natively with node:crypto (every other rule,
// and the choice of key and algorithm, stays in wasm).
import { createPublicKey, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import { initSync } from "./latch_verifier.js";
import { installSignatureCheck } from "./core.js";

initSync({ module: readFileSync(new URL("./latch_verifier_bg.wasm", import.meta.url)) });

const publicKeys = new Map();
installSignatureCheck((alg, jwk, signingInput, signature) => {
  const id = `${alg}:${jwk.x ?? ""}:${jwk.y ?? ""}:${jwk.n ?? ""}:${jwk.e ?? ""}`;
  let key = publicKeys.get(id);
  if (!key) {
    const members = Object.fromEntries(Object.entries(jwk).filter(([, value]) => value !== undefined));
    key = createPublicKey({ key: members, format: "jwk" });
    publicKeys.set(id, key);
  }
  return alg === "ES256"
    ? verify("sha256", signingInput, { key, dsaEncoding: "ieee-p1363" }, signature)
    : verify("sha256", signingInput, key, signature);
});

export { Verifier, VerifyError, createRemoteVerifier, decodeUnverified, expiresIn, hasRole, hasScope } from "./core.js";
