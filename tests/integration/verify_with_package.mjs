// Verifies a token with the built @latch/verifier package, finding the key set
// through the issuer's discovery document, at a given time.
// Usage: node verify_with_package.mjs PACKAGE_DIR ISSUER AUDIENCE TOKEN NOW
const [pkg, issuer, audience, token, now] = process.argv.slice(2);
const { createRemoteVerifier } = await import(`${pkg}/node.js`);
const verifier = createRemoteVerifier(issuer, { audience, clock: () => Number(now) });
try {
  const claims = await verifier.verify(token);
  console.log(JSON.stringify({ ok: true, sub: claims.sub, sid: claims.sid }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, code: error.code, message: error.message }));
}
