// Node entry point: Node compiles wasm from bytes, read next to this file, and
// checks EdDSA, ES256 and RS256 signatures natively with node:crypto (OpenSSL);
// every other rule, the signature's form, and the choice of key and algorithm
// stay in wasm.
import { createPublicKey, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import { initSync } from "./latch_verifier.js";
import { installSignatureCheck, markInitialized } from "./core.js";

initSync({ module: readFileSync(new URL("./latch_verifier_bg.wasm", import.meta.url)) });
markInitialized();

installSignatureCheck({
  algorithms: ["EdDSA", "ES256", "RS256"],
  importKey(jwk) {
    const members = Object.fromEntries(Object.entries(jwk).filter(([, value]) => value !== undefined));
    return createPublicKey({ key: members, format: "jwk" });
  },
  verify(alg, key, signingInput, signature) {
    switch (alg) {
      case "EdDSA":
        return verify(null, signingInput, key, signature);
      case "ES256":
        return verify("sha256", signingInput, { key, dsaEncoding: "ieee-p1363" }, signature);
      default:
        return verify("sha256", signingInput, key, signature);
    }
  },
});

export { Verifier, VerifyError, createRemoteVerifier, decodeUnverified, expiresIn, hasRole, hasScope } from "./core.js";
