// A new user's session in the web UI (issue 10), in headless Chromium through Playwright.
// Run by scripts/browser-test, which starts `aluskort serve` with two API keys and sets:
//   PLAYWRIGHT_DIR  where playwright-core is installed
//   BASE_URL        the server
//   ARTIFACTS       where screenshots go
//   DEMO_ALERTS     examples/sentinel-demo.jsonl
//   BROWSER_SENIOR_KEY, BROWSER_ANALYST_KEY
// Exits non-zero on the first failed expectation, naming it.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";

const require = createRequire(`${process.env.PLAYWRIGHT_DIR}/`);
const { chromium } = require("playwright-core");
const base = process.env.BASE_URL;
const shots = process.env.ARTIFACTS;
const senior = process.env.BROWSER_SENIOR_KEY;
const analyst = process.env.BROWSER_ANALYST_KEY;

const step = (name) => console.log(`browser-test: ${name}`);

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
const page = await context.newPage();
const consoleErrors = [];
page.on("console", (message) => message.type() === "error" && consoleErrors.push(message.text()));
page.on("pageerror", (error) => consoleErrors.push(String(error)));
const failedRequests = [];
page.on("response", (response) => response.status() >= 400 && failedRequests.push(`${response.status()} ${response.url()}`));
page.setDefaultTimeout(20000);

async function shot(name) {
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

async function signIn(key) {
  const dialog = page.locator("#sign-in");
  if (!(await dialog.evaluate((d) => d.open))) await page.click("#sign-in-button");
  await page.fill("#credential", key);
  await page.click("#sign-in-submit");
  await page.waitForFunction(() => !document.getElementById("sign-in").open);
}

try {
  step("a new user opens the UI and is asked to sign in (no default identity)");
  await page.goto(`${base}/`);
  await page.waitForURL(/\/ui\/#?/);
  await page.locator("#sign-in").waitFor({ state: "visible" });
  await shot("01-sign-in");
  await signIn(senior);
  await page.locator("#queue").waitFor();

  step("they triage the demo alerts through the Submit page");
  await page.click('a[data-page="submit"]');
  const demo = readFileSync(process.env.DEMO_ALERTS, "utf8");
  await page.fill("#alerts-input", demo);
  await page.click("#submit-alerts");
  await page.locator("#message.ok").waitFor();
  const message = await page.textContent("#message");
  assert.match(message, /^5 accepted, 0 rejected/, message);
  await shot("02-submitted");

  step("the queue fills with their investigations (awaiting a human)");
  await page.click('a[data-page="queue"]');
  await page.waitForFunction(() => {
    const states = [...document.querySelectorAll("#queue tbody .c-state")].map((cell) => cell.textContent);
    return states.length >= 5 && states.every((state) => state === "awaiting_human" || state === "closed");
  }, null, { timeout: 60000 }).catch(async (error) => {
    // The queue updates live; reload once in case an update was missed, then check again.
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll("#queue tbody tr").length >= 5);
    void error;
  });
  const live = await page.textContent("#live");
  assert.equal(live, "live", "the live-update stream is connected");
  const banner = await page.textContent("#degradation");
  assert.match(banner, /deterministic/, "the degradation banner says why there is no model");
  await shot("03-queue");

  step("they open the critical LSASS investigation");
  await page.click("#queue tbody tr >> text=LSASS");
  await page.locator("#reasoning").waitFor();
  const verdict = await page.textContent(".panel");
  assert.match(verdict, /Classification/);
  const reasoning = await page.locator("#reasoning li").count();
  assert.ok(reasoning >= 1, "the verdict says why");
  const attackLinks = await page.locator('#techniques a[href^="https://attack.mitre.org/techniques/"]').count();
  assert.ok(attackLinks >= 1, "techniques link to ATT&CK");
  await shot("04-investigation");

  step("an analyst may not approve: the API refuses and the UI says so");
  await page.click("#sign-in-button");
  await signIn(analyst);
  await page.click('a[data-page="approvals"]');
  await page.locator("tr[data-approval]").first().waitFor();
  await page.locator("tr[data-approval] button.primary").first().click();
  await page.locator("#message:not(.ok)").waitFor({ state: "visible" });
  assert.match(await page.textContent("#message"), /may not approve/);

  step("the senior analyst approves from the approvals inbox");
  await page.click("#sign-in-button");
  await signIn(senior);
  await page.click('a[data-page="audit"]');
  await page.click('a[data-page="approvals"]');
  await page.locator("tr[data-approval]").first().waitFor();
  const pendingBefore = await page.locator("tr[data-approval]").count();
  assert.ok(pendingBefore >= 1, "at least one action waits for approval");
  const row = page.locator("tr[data-approval]").first();
  const approvalId = await row.getAttribute("data-approval");
  await row.locator('input[aria-label="comment"]').fill("contain it");
  await shot("05-approvals");
  await row.locator("button.primary").click();
  await page.locator("#message.ok").waitFor();
  assert.match(await page.textContent("#message"), /approved/);
  const decided = await page.evaluate(async ([id, key]) => {
    const response = await fetch(`/v1/approvals/${id}`, { headers: { Authorization: `Bearer ${key}` } });
    return response.json();
  }, [approvalId, senior]);
  assert.equal(decided.approval.status, "approved", JSON.stringify(decided));
  assert.ok(JSON.stringify(decided).includes("sam.senior"), "the approver is the signed-in key's caller");
  await shot("06-approved");

  step("the audit trail shows a valid chain");
  await page.click('a[data-page="audit"]');
  await page.locator("#chain-status .chain-ok").waitFor();
  await page.locator("#audit-events tbody tr").nth(9).waitFor();
  const rows = await page.locator("#audit-events tbody tr").count();
  assert.ok(rows >= 10, `audit records listed (${rows})`);
  await shot("07-audit");

  step("markup in alert text is shown as text, never run");
  const hostile = {
    TenantId: "3f1c2a9e-0d4b-4e8a-9b77-5d2c1e0a6f10", TimeGenerated: new Date().toISOString(),
    DisplayName: '<img src=x onerror="window.__pwned=1">Hostile <b>title</b>', AlertName: "Hostile", AlertSeverity: "Medium",
    Description: "<script>window.__pwned=2</script>", ProviderName: "MDATP", VendorName: "Microsoft",
    SystemAlertId: `hostile-${Date.now()}`, ProductName: "Microsoft Defender for Endpoint", Type: "SecurityAlert",
    ExtendedProperties: "{}", Entities: '[{"$id":"2","HostName":"ws-hostile-01","Type":"host"}]', Tactics: "Execution",
    Techniques: '["T1059"]', Status: "New",
  };
  await page.click('a[data-page="submit"]');
  await page.fill("#alerts-input", JSON.stringify(hostile));
  await page.click("#submit-alerts");
  await page.locator("#message.ok").waitFor();
  await page.click('a[data-page="alerts"]');
  await page.locator("text=Hostile <b>title</b>").first().waitFor();
  assert.equal(await page.evaluate(() => window.__pwned), undefined, "no script from alert text ran");
  assert.equal(await page.locator("main img").count(), 0, "no element from alert text was created");
  await shot("08-hostile-alert-as-text");

  step("someone trying it locally (serve --no-auth) triages and approves under their name");
  const local = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const trial = await local.newPage();
  trial.on("pageerror", (error) => consoleErrors.push(String(error)));
  trial.setDefaultTimeout(20000);
  await trial.goto(`${process.env.NOAUTH_URL}/ui/#/submit`);
  await trial.fill("#alerts-input", demo);
  await trial.click("#submit-alerts");
  await trial.locator("#message.ok").waitFor();
  assert.equal(await trial.locator("#sign-in").evaluate((d) => d.open), false, "no sign-in without authentication");
  await trial.click('a[data-page="approvals"]');
  const first = trial.locator("tr[data-approval]").first();
  await first.waitFor({ timeout: 60000 });
  const trialApproval = await first.getAttribute("data-approval");
  await first.locator("button.primary").click();
  await trial.locator("#sign-in").waitFor({ state: "visible" });
  await trial.fill("#actor-name", "casey.local");
  await trial.click("#sign-in-submit");
  await trial.waitForFunction(() => !document.getElementById("sign-in").open);
  await trial.locator(`tr[data-approval="${trialApproval}"] button.primary`).click();
  await trial.locator("#message.ok").waitFor();
  const decidedLocally = await trial.evaluate(async (id) => (await fetch(`/v1/approvals/${id}`)).json(), trialApproval);
  assert.equal(decidedLocally.approval.status, "approved", JSON.stringify(decidedLocally));
  assert.ok(JSON.stringify(decidedLocally).includes("casey.local"), "the typed name is the approver");
  await trial.screenshot({ path: `${shots}/09-local-trial-approved.png`, fullPage: true });
  await local.close();

  const unexpected = consoleErrors.filter((text) => !/status of (401|403)/.test(text));
  assert.deepEqual(unexpected, [], "no script errors");
  // Only the refusals this session provokes: 401 before signing in, 403 for the analyst's approval.
  const refused = failedRequests.filter((line) => !/^401 |^403 .*\/approve$/.test(line));
  assert.deepEqual(refused, [], "no failed request other than the expected refusals");
  step("passed");
} catch (error) {
  await shot("failure").catch(() => {});
  console.error(`browser-test: FAILED: ${error.stack || error}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
