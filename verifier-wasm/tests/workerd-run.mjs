// Runs a worker in workerd (from npm) for the package's tests: the package's
// files beside the worker, a config from a template, a port the test picks.
import { spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packageDir } from "./installed.mjs";

const here = new URL(".", import.meta.url).pathname;
const PACKAGE_FILES = ["workerd.js", "core.js", "latch_verifier.js", "latch_verifier_bg.wasm"];

const freePort = () =>
  new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

/**
 * Starts workerd on `template` (a config with @PORT@ and the `replacements`),
 * with `files` ({ name: path }) and the installed package under `verifier/`.
 * Returns `{ base, stop }`.
 */
export async function startWorkerd(template, files, replacements = {}) {
  const dir = mkdtempSync(join(tmpdir(), "latch-workerd-"));
  mkdirSync(join(dir, "verifier"));
  for (const file of PACKAGE_FILES) cpSync(join(packageDir, file), join(dir, "verifier", file));
  for (const [name, path] of Object.entries(files)) cpSync(path, join(dir, name));
  const port = await freePort();
  let config = readFileSync(template, "utf8").replace("@PORT@", String(port));
  for (const [name, value] of Object.entries(replacements)) config = config.replaceAll(`@${name}@`, value);
  writeFileSync(join(dir, "config.capnp"), config);
  const workerd = spawn(join(here, "node_modules", ".bin", "workerd"), ["serve", join(dir, "config.capnp")], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  const base = `http://127.0.0.1:${port}`;
  // Start-up time is not a test outcome: the deadline only ends a wait for
  // a workerd that will never listen.
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (workerd.exitCode !== null) throw new Error(`workerd exited with ${workerd.exitCode}`);
    if (Date.now() > deadline) {
      workerd.kill();
      throw new Error("workerd did not listen within 120 s");
    }
    try {
      await fetch(base);
      break;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return {
    base,
    async stop() {
      workerd.kill();
      await new Promise((resolve) => (workerd.exitCode !== null ? resolve() : workerd.once("exit", resolve)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
