// The portal in real Chromium (Debian's, driven by playwright-core), as an
// admin and as a member, against a real control plane and data plane and
// the Bedrock double. Prints what it saw as JSON for the pytest test
// (dataplane/tests/e2e/test_portal.py) to judge, and takes a screenshot of
// each main page into SCREENSHOTS (docs/portal/ by default).
//
// GATEWAY: the public URL (the data plane, which passes the portal through)
// ADMIN_PASSWORD, MEMBER_EMAIL, MEMBER_PASSWORD, CHROMIUM, SCREENSHOTS.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const G = process.env.GATEWAY;
const shots = process.env.SCREENSHOTS;
mkdirSync(shots, { recursive: true });
const out = { problems: [], steps: {} };
const deadline = (ms) => Date.now() + ms;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox"],
});

async function newPage(viewport = { width: 1280, height: 860 }) {
  const ctx = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await ctx.newPage();
  // A CSP violation, a script error or a failed API call shows up here.
  // (A failed load is judged by its response below: asking for the
  // session before signing in is answered 401, as it should be.)
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) out.problems.push(`console: ${m.text()}`);
  });
  page.on("response", (r) => {
    const expected = r.status() === 401 && new URL(r.url()).pathname === "/auth/session";
    if (r.status() >= 400 && !expected) out.problems.push(`${r.status()} ${r.request().method()} ${r.url()}`);
  });
  page.on("pageerror", (e) => out.problems.push(`page error: ${e.message}`));
  page.on("dialog", (d) => d.accept());
  return page;
}

async function shot(page, name) {
  await page.waitForLoadState("networkidle");
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
}

async function go(page, path) {
  await page.goto(`${G}/portal${path}`);
  await page.waitForLoadState("networkidle");
  await page.locator("h1").first().waitFor();
}

/** Reloads `path` until `testid`'s text satisfies `ok`, for data that arrives a moment later. */
async function until(page, path, testid, ok, ms = 30000) {
  const end = deadline(ms);
  let text = "";
  while (Date.now() < end) {
    await go(page, path);
    const el = page.getByTestId(testid);
    if (await el.count()) {
      text = (await el.first().innerText()).trim();
      if (ok(text)) return text;
    }
    await page.waitForTimeout(500);
  }
  return text;
}

/** A gRPC-Web call made from the page's own script context (its cookie and CSRF token). */
async function rawCall(page, path) {
  return page.evaluate(async (path) => {
    const s = await (await fetch("/auth/session")).json();
    const res = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", "x-csrf-token": s.csrf_token },
      body: new Uint8Array([0, 0, 0, 0, 0]),
    });
    const body = new Uint8Array(await res.arrayBuffer());
    let status = res.headers.get("grpc-status");
    // Otherwise in the trailers frame (flag 0x80) at the end of the body.
    for (let i = 0; i + 5 <= body.length; ) {
      const len = (body[i + 1] << 24) | (body[i + 2] << 16) | (body[i + 3] << 8) | body[i + 4];
      if (body[i] & 0x80) {
        const m = new TextDecoder().decode(body.slice(i + 5, i + 5 + len)).match(/grpc-status:\s*(\d+)/);
        if (m) status = m[1];
      }
      i += 5 + len;
    }
    return Number(status);
  }, path);
}

async function messages(key) {
  const res = await fetch(`${G}/v1/messages`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": key, "anthropic-version": "2023-06-01" },
    body: JSON.stringify({ model: "claude-sonnet-4-5", max_tokens: 64, messages: [{ role: "user", content: "Hello from the portal test" }] }),
  });
  return res.status;
}

try {
  // ---------------------------------------------------------------- admin
  const page = await newPage();
  await page.goto(`${G}/portal/`);
  await page.getByLabel("Email or username").waitFor();
  await shot(page, "signin");
  await page.getByLabel("Email or username").fill("admin");
  await page.getByLabel("Password").fill(process.env.ADMIN_PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("who").waitFor();
  out.steps.admin_landing = new URL(page.url()).pathname;
  out.steps.document_cookie = await page.evaluate(() => document.cookie);
  out.steps.local_storage = await page.evaluate(() => Object.keys(localStorage).length + Object.keys(sessionStorage).length);

  // A key, shown once.
  await go(page, "/keys");
  await page.getByTestId("create-key").getByRole("textbox", { name: "Name" }).fill("portal-key");
  await page.getByTestId("create-key").getByRole("button", { name: "Create key" }).click();
  const secret = (await page.getByTestId("new-key-secret").innerText()).trim();
  out.steps.key_prefix = secret.slice(0, 8);
  await shot(page, "keys");
  await go(page, "/keys");
  out.steps.secret_after_reload = await page.getByTestId("new-key-secret").count();
  out.steps.secret_in_page_after_reload = (await page.content()).includes(secret);

  // A request through the data plane with it, then its cost in My usage
  // and in the admin analytics.
  out.steps.first_request = await messages(secret);
  out.steps.my_requests = await until(page, "/usage", "my-requests", (t) => t !== "0");
  out.steps.my_cost = (await page.getByTestId("my-cost").innerText()).trim();
  await shot(page, "usage");
  out.steps.total_requests = await until(page, "/admin/analytics", "total-requests", (t) => t !== "0");
  out.steps.total_cost = (await page.getByTestId("total-cost").innerText()).trim();
  await shot(page, "analytics");

  // A team with a budget.
  await go(page, "/admin/teams");
  await page.getByTestId("create-team").getByRole("textbox", { name: "Name" }).fill("platform");
  await page.getByTestId("create-team").getByRole("button").first().click();
  await page.getByTestId("budget-form").waitFor();
  await page.getByTestId("budget-form").locator("input[name=amount]").fill("50");
  await page.getByTestId("budget-form").getByRole("button", { name: "Set budget" }).click();
  await page.getByTestId("budget-amount").first().waitFor({ timeout: 10000 });
  out.steps.team_budget = (await page.getByTestId("budget-amount").first().innerText()).trim();
  await shot(page, "team");

  // Revoked in the portal, refused by the data plane.
  await go(page, "/keys");
  await page.getByRole("button", { name: "Revoke portal-key" }).click();
  await page.getByRole("button", { name: "Revoke portal-key" }).waitFor({ state: "detached", timeout: 10000 });
  let refused = 0;
  for (const end = deadline(15000); Date.now() < end; ) {
    refused = await messages(secret);
    if (refused === 401) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  out.steps.after_revoke = refused;

  // The audit log shows each change.
  await go(page, "/admin/audit");
  await page.locator("table").first().waitFor();
  out.steps.audit_text = await page.locator("main").innerText();
  await shot(page, "audit");

  // Every other main page opens without an error.
  out.steps.pages = {};
  for (const [name, path] of [
    ["connect", "/connect"], ["users", "/admin/users"], ["budgets", "/admin/budgets"],
    ["endpoints", "/admin/endpoints"], ["models", "/admin/models"], ["prices", "/admin/prices"],
    ["notifications", "/admin/notifications"], ["idps", "/admin/idps"], ["settings", "/admin/settings"],
    ["dataplanes", "/admin/dataplanes"],
  ]) {
    await go(page, path);
    out.steps.pages[name] = {
      title: (await page.locator("h1").first().innerText()).trim(),
      errors: await page.locator("[role=alert]").count(),
    };
    await shot(page, name);
  }
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Email or username").waitFor();

  // ---------------------------------------------------------------- member, keyboard only, on a phone
  const phone = await newPage({ width: 390, height: 844 });
  await phone.goto(`${G}/portal/`);
  await phone.getByLabel("Email or username").waitFor();
  await phone.keyboard.press("Tab");
  await phone.keyboard.type(process.env.MEMBER_EMAIL);
  await phone.keyboard.press("Tab");
  await phone.keyboard.type(process.env.MEMBER_PASSWORD);
  await phone.keyboard.press("Enter");
  await phone.getByTestId("who").waitFor({ state: "attached" });
  out.steps.member_landing = new URL(phone.url()).pathname;
  out.steps.member_nav = await phone.locator("nav").innerText();
  await shot(phone, "usage-phone");
  await go(phone, "/admin/users");
  out.steps.member_admin_page = (await phone.locator("h1").first().innerText()).trim();
  // Checked at the API, not only in the UI.
  out.steps.member_list_audit = await rawCall(phone, "/ccag.admin.v1.AuditService/ListAudit");
  out.steps.member_list_users_status = await rawCall(phone, "/ccag.admin.v1.UserService/ListUsers");
  out.steps.member_get_status = await rawCall(phone, "/ccag.admin.v1.StatusService/GetStatus");
} catch (e) {
  out.error = `${e.stack || e}`;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
