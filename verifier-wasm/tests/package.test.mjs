// The package is ready to publish: licence files, metadata, engines that
// match what is tested (require() included), publint and
// @arethetypeswrong/cli without problems, `npm publish --dry-run`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { publint } from "publint";
import { packageDir } from "./installed.mjs";

const here = new URL(".", import.meta.url).pathname;
const root = join(here, "..", "..");
const built = join(here, "..", "pkg");
const manifest = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8"));

test("the licence files of the repository are in the package, and the metadata is complete", () => {
  for (const file of ["LICENSE-MIT", "LICENSE-APACHE"]) {
    assert.deepEqual(readFileSync(join(packageDir, file)), readFileSync(join(root, file)), file);
  }
  assert.match(readFileSync(join(root, "LICENSE-APACHE"), "utf8"), /Apache License\s+Version 2\.0/);
  assert.match(readFileSync(join(root, "LICENSE-MIT"), "utf8"), /Permission is hereby granted, free of charge/);
  assert.equal(manifest.license, "MIT OR Apache-2.0");
  assert.match(manifest.repository.url, /^git\+https:\/\//);
  assert.equal(manifest.repository.directory, "verifier-wasm");
  assert.match(manifest.homepage, /^https:\/\//);
  assert.match(manifest.bugs.url, /^https:\/\//);
  assert.ok(manifest.keywords.includes("jwt") && manifest.keywords.includes("revocation"));
});

test("engines names the Node versions this runs on, and require() works there", () => {
  assert.equal(manifest.engines.node, ">=20.19");
  const [major, minor] = process.versions.node.split(".").map(Number);
  assert.ok(major > 20 || (major === 20 && minor >= 19), `the tests run on Node ${process.version}, inside the range`);
  const required = spawnSync(
    process.execPath,
    ["-e", 'const v = require("@latch/verifier"); console.log(typeof v.Verifier, typeof v.createRemoteVerifier, typeof require("@latch/verifier/init").init)'],
    { cwd: here, encoding: "utf8" },
  );
  assert.equal(required.status, 0, required.stderr);
  assert.equal(required.stdout.trim(), "function function function");
});

test("publint finds nothing, even in strict mode", async () => {
  const { messages } = await publint({ pkgDir: packageDir, strict: true });
  assert.deepEqual(messages, []);
});

test("@arethetypeswrong/cli finds no problem for an ESM-only package", () => {
  // The .wasm subpath is an asset, not a module with types; `esm-only`
  // leaves out CommonJS and node10 resolution, which an ESM-only package
  // does not serve (require() of it works from Node 20.19, tested above).
  const attw = spawnSync(
    join(here, "node_modules", ".bin", "attw"),
    ["--pack", built, "--profile", "esm-only", "--exclude-entrypoints", "./latch_verifier_bg.wasm", "--format", "json"],
    { encoding: "utf8" },
  );
  assert.equal(attw.status, 0, attw.stdout.slice(0, 4000) + attw.stderr);
  const { problems } = JSON.parse(attw.stdout);
  const counted = Object.values(problems ?? {}).flat().filter((problem) => !["node10", "node16-cjs"].includes(problem.resolutionKind));
  assert.deepEqual(counted, []);
});

test("npm publish --dry-run accepts the package and ships what it needs", () => {
  const publish = spawnSync("npm", ["publish", "--dry-run", "--json"], { cwd: built, encoding: "utf8" });
  assert.equal(publish.status, 0, publish.stderr);
  const report = JSON.parse(publish.stdout.slice(publish.stdout.indexOf("{")));
  const files = report["@latch/verifier"].files.map((file) => file.path);
  for (const needed of ["LICENSE-MIT", "LICENSE-APACHE", "init.js", "init.d.ts", "index.d.ts", "latch_verifier_bg.wasm", "node.js", "workerd.js", "browser.js"]) {
    assert.ok(files.includes(needed), `${needed} in ${files}`);
  }
});
