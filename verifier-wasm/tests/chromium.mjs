// Debian's Chromium through playwright-core, with the flags this machine
// needs; playwright gives every launch a fresh, empty profile of its own.
import { chromium } from "playwright-core";

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * Records the page's script and console errors and Content-Security-Policy violations from
 * its first load on; `seen()` returns both so far (violations read from every
 * document the page has shown since the last navigation).
 */
export async function watchPage(page) {
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  // What the browser's console reports as an error: a failed load (such as a
  // missing /favicon.ico) shows here, not as a page error.
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()} (${message.location().url})`);
  });
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`),
    );
  });
  return { errors, violations: () => page.evaluate(() => window.__violations) };
}
