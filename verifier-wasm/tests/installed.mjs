// The package as a consumer has it: the tarball `npm pack` made from ../pkg,
// installed into node_modules by the test command. The tests import and
// serve it from here, never from the source folder; a stale install (older
// than the build) is refused.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const packageDir = dirname(fileURLToPath(import.meta.resolve("@latch/verifier/package.json")));
const built = join(dirname(fileURLToPath(import.meta.url)), "..", "pkg");
if (!packageDir.includes("node_modules")) throw new Error(`@latch/verifier resolves to ${packageDir}, not an install`);
for (const file of ["latch_verifier_bg.wasm", "core.js", "package.json"]) {
  if (!readFileSync(join(packageDir, file)).equals(readFileSync(join(built, file)))) {
    throw new Error(`the installed @latch/verifier differs from ../pkg (${file}): run the test command, which packs and installs it`);
  }
}
