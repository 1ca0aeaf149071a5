// Walks through a running latch's web demo (/demo) in Debian's Chromium:
// registers, sees the token verified in the page, tampers (bad_signature),
// simulates expiry, refreshes (rotation, same session), ends sessions and logs
// out, then a failed login shows the server's problem title, and an admin's
// login shows the admin-only panel; "Forgot password" mails a link (read from
// the server's outbox) whose page sets a new password; in a tenant that
// requires verified emails, registration mails a link whose page verifies the
// address before the first login. Prints what it saw as one JSON line and
// saves a screenshot of the verified state.
// Run by the server's integration tests (tests/integration/demo.rs); it lives
// here to share this folder's playwright-core.
// Usage: node server-demo.mjs BASE_URL EMAIL SCREENSHOT_PATH ADMIN_EMAIL ADMIN_PASSWORD OUTBOX_DIR VERIFYING_TENANT
import { existsSync, mkdirSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { launchChromium, watchPage } from "./chromium.mjs";

const [base, email, screenshot, adminEmail, adminPassword, outbox, verifyingTenant] = process.argv.slice(2);
const password = "a long demo passphrase";
const seen = {};
const browser = await launchChromium();
try {
  // A phone-width viewport: the page must work there.
  const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  const watched = await watchPage(page);
  const verdict = () => page.textContent("#verdict");
  const waitForVerdict = (text) =>
    page.waitForFunction((t) => document.querySelector("#verdict")?.textContent.includes(t), text, { timeout: 15000 });

  await page.goto(`${base}/demo`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 20000 });
  seen.issuer = await page.textContent("#issuer");
  seen.unlabelled = await page.evaluate(
    () => [...document.querySelectorAll("input")].filter((input) => !input.labels?.length).map((input) => input.id),
  );

  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password (at least 10 characters)").fill(password);
  await page.getByRole("button", { name: "Register" }).click();
  await waitForVerdict("verified");
  seen.registered = await verdict();
  seen.who = await page.textContent("#who");
  seen.roles = await page.$$eval("#roles .badge", (badges) => badges.map((badge) => badge.textContent));
  seen.adminPanelVisible = await page.isVisible("#admin-panel");
  seen.countdown = await page.textContent("#countdown");
  seen.claims = JSON.parse(await page.textContent("#claims"));
  seen.fitsWidth = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });

  await page.getByRole("button", { name: "Tamper with the token" }).click();
  await waitForVerdict("rejected");
  seen.tampered = await page.textContent("#verdict .code");

  await page.getByRole("button", { name: "Verify as if expired" }).click();
  await waitForVerdict("31 s after");
  seen.expired = await page.textContent("#verdict .code");

  const refreshBefore = await page.evaluate(() => document.querySelector("#token").textContent);
  await page.getByRole("button", { name: "Refresh" }).click();
  await page.waitForFunction(() => document.querySelector("#rotation")?.textContent.includes("rotated"), null, {
    timeout: 15000,
  });
  seen.rotation = await page.textContent("#rotation");
  seen.refreshedVerdict = await verdict();
  seen.tokenChanged = refreshBefore !== (await page.textContent("#token"));
  seen.refreshedSid = JSON.parse(await page.textContent("#claims")).sid;
  seen.sessions = await page.$$eval("#sessions li", (items) => items.map((item) => item.textContent));

  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForSelector("#account:not([hidden])", { timeout: 15000 });
  seen.afterLogout = await page.textContent("#account-note");

  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password (at least 10 characters)").fill("not the password at all");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForSelector("#problem:not([hidden])", { timeout: 15000 });
  seen.failedLogin = await page.textContent("#problem");

  await page.getByLabel("Password (at least 10 characters)").fill(adminPassword);
  await page.getByLabel("Email").fill(adminEmail);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForFunction((who) => document.querySelector("#who")?.textContent === who, adminEmail, {
    timeout: 15000,
  });
  await waitForVerdict("verified");
  seen.adminRoles = await page.$$eval("#roles .badge", (badges) => badges.map((badge) => badge.textContent));
  seen.adminPanelVisibleToAdmin = await page.isVisible("#admin-panel");
  await page.getByRole("button", { name: "List the tenant's users" }).click();
  await page.waitForSelector("#users li", { timeout: 15000 });
  seen.listedUsers = await page.$$eval("#users li", (items) => items.map((item) => item.textContent));

  seen.violations = await watched.violations();

  // Password reset: the demo's button, the mail in the outbox, the reset page.
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForSelector("#account:not([hidden])", { timeout: 15000 });
  await page.getByLabel("Email").fill(email);
  await page.getByRole("button", { name: "Forgot password" }).click();
  await page.waitForFunction(() => document.querySelector("#account-note")?.textContent.includes("reset link"), null, {
    timeout: 15000,
  });
  const link = await mailedLink(outbox, email, "/demo/reset-password");
  await page.goto(link);
  await page.getByLabel("New password (at least 10 characters)").fill("a brand new passphrase");
  await page.getByRole("button", { name: "Set the new password" }).click();
  await page.waitForFunction(() => document.querySelector("#done")?.textContent.includes("Password changed"), null, {
    timeout: 15000,
  });
  seen.resetDone = await page.textContent("#done");
  seen.violations.push(...(await watched.violations()));
  await page.goto(`${base}/demo/`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 20000 });
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password (at least 10 characters)").fill("a brand new passphrase");
  await page.getByRole("button", { name: "Log in" }).click();
  await waitForVerdict("verified");
  seen.loginAfterReset = await page.textContent("#who");
  seen.violations.push(...(await watched.violations()));

  // "Sign in with latch": the hosted sign-in page, then back with a code
  // that the page exchanges (PKCE), the token verified like any other.
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForSelector("#account:not([hidden])", { timeout: 15000 });
  await page.getByRole("button", { name: "Sign in with latch" }).click();
  await page.waitForURL((url) => url.pathname.endsWith("/oauth/authorize"), { timeout: 15000 });
  seen.hostedPageTitle = await page.title();
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill("a brand new passphrase");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((url) => url.pathname === "/demo/", { timeout: 15000 });
  await page.waitForSelector("body[data-ready=true]", { timeout: 20000 });
  await waitForVerdict("verified");
  seen.signedInWithLatch = await page.textContent("#who");
  seen.signInNote = await page.textContent("#account-note");
  seen.oidcClientId = JSON.parse(await page.textContent("#claims")).client_id;
  await page.getByRole("button", { name: "Refresh" }).click();
  await page.waitForFunction(() => document.querySelector("#rotation")?.textContent.includes("same session"), null, {
    timeout: 15000,
  });
  seen.oidcRefresh = await page.textContent("#rotation");
  seen.violations.push(...(await watched.violations()));

  // A tenant that requires verified emails: registration mails a link whose
  // page verifies the address, then the login works.
  await page.goto(`${base}/demo/?tenant=${verifyingTenant}`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 20000 });
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password (at least 10 characters)").fill(password);
  await page.getByRole("button", { name: "Register" }).click();
  await page.waitForFunction(() => document.querySelector("#account-note")?.textContent.includes("Account created"), null, {
    timeout: 15000,
  });
  seen.registeredUnverified = await page.textContent("#account-note");
  await page.getByRole("button", { name: "Resend verification mail" }).click();
  await page.waitForFunction(() => document.querySelector("#account-note")?.textContent.includes("verification link"), null, {
    timeout: 15000,
  });
  await page.goto(await mailedLink(outbox, email, "/demo/verify-email"));
  await page.getByRole("button", { name: "Verify my email" }).click();
  await page.waitForFunction(() => document.querySelector("#done")?.textContent.includes("verified"), null, {
    timeout: 15000,
  });
  seen.verifiedPage = await page.textContent("#done");
  seen.violations.push(...(await watched.violations()));
  await page.goto(`${base}/demo/?tenant=${verifyingTenant}`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 20000 });
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password (at least 10 characters)").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await waitForVerdict("verified");
  seen.loginAfterVerification = JSON.parse(await page.textContent("#claims")).tid;
  seen.violations.push(...(await watched.violations()));
  seen.errors = watched.errors;
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}

/** The link to `path` in the outbox's mail to `to` (the server sends mail in the background). */
async function mailedLink(dir, to, path) {
  const deadline = Date.now() + 15000;
  const pattern = new RegExp(`https?://\\S+${path}\\?tenant=[^\\s"<>]+`);
  while (Date.now() < deadline) {
    const files = existsSync(dir) ? readdirSync(dir).filter((name) => name.endsWith(".eml")) : [];
    for (const name of files) {
      const mail = readFileSync(join(dir, name), "utf8");
      const link = pattern.exec(mail);
      if (link && mail.includes(to)) return link[0];
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no mail to ${to} linking ${path} in ${dir}`);
}
