// The page script each bundler builds: it loads the verifier through the
// explicit entry, with the wasm URL its bundler emitted, and without a
// top-level await (so it builds as IIFE too). The test fills window.fixture.
import { Verifier, VerifyError, init } from "@latch/verifier/init";

export function run(wasmUrl) {
  const fixture = window.fixture;
  const outcome = (check) =>
    Promise.resolve()
      .then(check)
      .then(
        (claims) => ({ ok: true, sub: claims.sub }),
        (error) => ({ ok: false, code: error instanceof VerifyError ? error.code : String(error) }),
      );
  const results = {};
  outcome(() => new Verifier(fixture.jwks, fixture))
    .then((early) => {
      results.beforeInit = early;
      return init(wasmUrl);
    })
    .then(async () => {
      const verifier = new Verifier(fixture.jwks, fixture);
      results.eddsa = await outcome(() => verifier.verify(fixture.tokens.EdDSA));
      results.es256 = await outcome(() => verifier.verifyAsync(fixture.tokens.ES256));
      results.tampered = await outcome(() => verifier.verify(fixture.tampered));
      window.results = results;
    })
    .catch((error) => {
      window.results = { failed: String(error) };
    });
}
