// Signs in through the gateway in real Chromium: opens START_URL, logs in
// at the provider's screen as LOGIN, confirms consent, and prints what the
// browser ended on: {url, text, cookies, documentCookie} as JSON.
import { chromium } from 'playwright-core';

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox'] });
try {
  const page = await browser.newPage();
  await page.goto(process.env.START_URL);
  await page.fill('input[name=login]', process.env.LOGIN);
  await page.fill('input[name=password]', 'any password');
  await page.click('button[type=submit]');
  await page.waitForLoadState();
  if (await page.locator('input[name=prompt][value=consent]').count()) {
    await page.click('button[type=submit]');
  }
  await page.waitForURL((u) => !u.href.startsWith(process.env.ISSUER), { timeout: 15000 });
  await page.waitForLoadState();
  const out = {
    url: page.url(),
    text: await page.locator('body').innerText(),
    cookies: await page.context().cookies(),
    documentCookie: await page.evaluate(() => document.cookie),
  };
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
