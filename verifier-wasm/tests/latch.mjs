// A real latch server for the package's tests: the binary the test command
// built (target/debug/latch), on a port the kernel picks, with a fresh data
// directory; stopped (and its directory removed) by `stop()`.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createInterface } from "node:readline";
import { tmpdir } from "node:os";
import { join } from "node:path";

const here = new URL(".", import.meta.url).pathname;
export const OPERATOR_TOKEN = "package-test-operator-token-0123456789";
export const PASSWORD = "correct horse battery staple";

export async function startLatch() {
  const binary = process.env.LATCH_BINARY ?? join(here, "..", "..", "target", "debug", "latch");
  const dir = mkdtempSync(join(tmpdir(), "latch-package-"));
  const child = spawn(binary, ["serve", "--listen", "127.0.0.1:0", "--data-dir", join(dir, "data")], {
    env: { ...process.env, LATCH_OPERATOR_TOKEN: OPERATOR_TOKEN, LATCH_LOG: "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  const first = await new Promise((resolve, reject) => {
    lines.once("line", resolve);
    child.once("exit", (code) => reject(new Error(`latch exited with ${code} before its banner`)));
  });
  lines.on("line", () => {}); // keep draining the banner
  const address = first.split(" ").at(-1);
  const base = `http://${address}`;
  // Start-up time is not a test outcome: the deadline only ends a wait for
  // a latch that will never be ready.
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill();
      throw new Error(`latch at ${base} did not become ready (exit code ${child.exitCode})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    base,
    /** Calls the API; the JSON answer (or null) with its status. */
    async api(method, path, { token, body } = {}) {
      const headers = { ...(body ? { "content-type": "application/json" } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) };
      const response = await fetch(`${base}${path}`, { method, headers, body: body ? JSON.stringify(body) : undefined });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : null };
    },
    /** Registers `email` in `tenant` and returns its tokens. */
    async register(tenant, email) {
      const { status, body } = await this.api("POST", `/t/${tenant}/auth/register`, { body: { email, password: PASSWORD } });
      if (status !== 201) throw new Error(`register ${email}: ${status} ${JSON.stringify(body)}`);
      return body;
    },
    async logout(tenant, accessToken) {
      const { status } = await this.api("POST", `/t/${tenant}/auth/logout`, { token: accessToken });
      if (status !== 204) throw new Error(`logout: ${status}`);
    },
    async createTenant(id) {
      const { status, body } = await this.api("POST", "/admin/tenants", { token: OPERATOR_TOKEN, body: { id, name: id } });
      if (status !== 201) throw new Error(`create tenant ${id}: ${status} ${JSON.stringify(body)}`);
    },
    async stop() {
      child.kill();
      await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once("exit", resolve)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
