// Opens a running latch's API explorer (/docs) in Debian's Chromium and
// prints what rendered and which Content-Security-Policy violations the page
// reported, as one JSON line. Run by the server's integration tests
// (tests/integration/openapi.rs); it lives here to share this folder's
// playwright-core.
import { launchChromium, watchPage } from "./chromium.mjs";

const base = process.argv[2];
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  const watched = await watchPage(page);
  await page.goto(`${base}/docs/`);
  await page.waitForSelector(".swagger-ui .info .title", { timeout: 20000 });
  const title = await page.textContent(".swagger-ui .info .title");
  const operations = await page.locator(".opblock").count();
  const violations = await watched.violations();
  console.log(JSON.stringify({ title, operations, violations, errors: watched.errors }));
} finally {
  await browser.close();
}
