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
 * Records the page's script errors and Content-Security-Policy violations from
 * its first load on; `seen()` returns both so far (violations read from every
 * document the page has shown since the last navigation).
 */
export async function watchPage(page) {
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`),
    );
  });
  return { errors, violations: () => page.evaluate(() => window.__violations) };
}
