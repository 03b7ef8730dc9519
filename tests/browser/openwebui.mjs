// Drive Open WebUI in Debian's Chromium: sign up the first admin, pick o3-pro (served through the proxy),
// send a message, and check that the answer and its collapsible reasoning block appear. Saves a screenshot.
//
// Usage: node openwebui.mjs <Open WebUI URL> <screenshot path>
// Expects the demo answer of tests/browser/stack.py.
import { chromium } from 'playwright-core';

const [url, screenshot] = process.argv.slice(2);
if (!url || !screenshot) throw new Error('usage: node openwebui.mjs <Open WebUI URL> <screenshot path>');

const MODEL = 'o3-pro';
const QUESTION = 'How does the proxy let me use o3-pro here?';
const ANSWER_START = 'is served only by the Responses API, so the proxy:';
const ANSWER_END = 'That is why you can see my reasoning above this answer.';
const REASONING = 'The user asks how the proxy handles o3-pro.';
const REASONING_END = 'Explain the translation in two steps and keep it short.';
const SETTLE = 1_000; // ms for the block's opening animation before the screenshot
const STEP = 30_000; // ms allowed for each step; the whole run is bounded by these

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 640 } });
  page.setDefaultTimeout(STEP);

  // The first account created becomes the admin.
  await page.goto(url);
  await page.getByRole('button', { name: /Get started/ }).click();
  await page.locator('#name').fill('Admin');
  await page.locator('#email').fill('admin@example.com');
  await page.locator('#password').fill('browser-job-password');
  await page.locator('button[type=submit]').click();
  await page.waitForURL(new URL('/', url).href);
  const whatsNew = page.getByRole('button', { name: "Okay, Let's Go!" });
  await whatsNew.click({ timeout: 5_000 }).catch(() => {}); // the release notes dialog, shown once

  await page.locator('#model-selector-model-button').click();
  await page.getByRole('option', { name: `Select ${MODEL} model` }).click();
  await page.locator('#model-selector-model-button', { hasText: MODEL }).waitFor();

  await page.locator('#chat-input').fill(QUESTION);
  await page.keyboard.press('Enter');

  const answer = page.locator('#response-content-container').last();
  await answer.getByText(ANSWER_END).waitFor();
  await answer.getByText(ANSWER_START).waitFor();
  // Open WebUI folds `reasoning_content` into a collapsed "Thought for ..." block above the answer.
  const thought = answer.getByText(/Thought for/);
  await thought.waitFor();
  if (await answer.getByText(REASONING).isVisible()) throw new Error('the reasoning block should start collapsed');
  await thought.click();
  await answer.getByText(REASONING).waitFor();
  await answer.getByText(REASONING_END).waitFor();
  await page.waitForTimeout(SETTLE);
  await page.screenshot({ path: screenshot });
  console.log(JSON.stringify({ ok: true, screenshot }));
} finally {
  await browser.close();
}
