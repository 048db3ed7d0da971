// GraphiQL as someone behind a firewall meets it: every request to another host is blocked. The
// page still loads (its files come from this server), a query runs with the Bearer header typed
// into the headers editor, and so does a messageEvents subscription (over SSE, which carries it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/server/app.ts';
import { createChat, registerUser, sendText, startTestApp, type TestUser } from '../support/helpers.ts';
import { chromiumMissing, isolatedContext, launchBrowser, screenshots, type Browser, type Page } from './support/browser.ts';

let app: App;
let base: string;
let browser: Browser;
let ada: TestUser;
let bob: TestUser;
let chatId: string;

beforeAll(async () => {
  if (chromiumMissing) return;
  app = await startTestApp();
  base = new URL((await app.start()).url).origin;
  browser = await launchBrowser();
  [ada, bob] = await Promise.all([registerUser(app), registerUser(app)]);
  chatId = await createChat(app, ada, { kind: 'DIRECT', memberIds: [bob.id] });
});

afterAll(async () => {
  await browser?.close();
  await app?.stop();
});

/** Replaces the text of a Monaco editor as a person would: click, select all, type. */
async function typeInto(page: Page, editor: string, text: string) {
  await page.locator(editor).click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.press('Delete');
  // insertText types it as one input, without the editor auto-closing brackets and quotes.
  await page.keyboard.insertText(text);
}

/** Opens a default tab, puts the viewer's token in its headers and runs it. */
async function runTabSignedIn(page: Page, tab: string, token: string) {
  const tabElement = page.getByRole('tab', { name: tab });
  // The tabs slide into place at first (a click may land on a moving one): click until it is the open tab.
  await expect
    .poll(async () => {
      await tabElement.getByRole('button', { name: tab, exact: true }).click();
      return tabElement.getAttribute('aria-selected');
    })
    .toBe('true');
  await page.getByRole('button', { name: 'Headers' }).click();
  await typeInto(page, '.monaco-editor[data-uri$="headers.json"]', JSON.stringify({ Authorization: `Bearer ${token}` }));
  await page.getByRole('button', { name: /Execute query/ }).click();
}

/** The result pane's text, with the editor's non-breaking spaces as plain ones. */
const response = async (page: Page) => (await page.locator('.graphiql-response').textContent())?.replace(/\s+/g, ' ') ?? '';

describe.skipIf(chromiumMissing)('GraphiQL offline', () => {
  it('loads from this server alone, under a CSP, and runs a signed-in query and a subscription', async () => {
    const { context, leaks, errors } = await isolatedContext(browser, base);
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    const sameOrigin: string[] = [];
    page.on('request', (request) => sameOrigin.push(request.url()));

    const html = await page.goto(`${base}/graphql`);
    expect(html?.headers()['content-security-policy']).toMatch(/default-src 'none'; script-src 'self'/);
    await page.locator('.graphiql-container .monaco-editor').first().waitFor({ timeout: 30_000 });
    expect(await page.title()).toBe('Kocmoc GraphiQL');
    // The way back to the web client.
    expect(await page.locator('a[href="/"]').count()).toBeGreaterThan(0);

    await runTabSignedIn(page, 'MyChats', ada.accessToken);
    await expect.poll(() => response(page), { timeout: 15_000 }).toContain(ada.username);
    expect(await response(page)).toContain(chatId);

    await runTabSignedIn(page, 'LiveMessages', ada.accessToken);
    // Once the subscription runs, a message Bob sends arrives in the result pane.
    await expect
      .poll(
        async () => {
          await sendText(app, bob, chatId, 'hello over SSE');
          return response(page);
        },
        { timeout: 15_000, interval: 1_000 },
      )
      .toContain('hello over SSE');

    await screenshots('graphiql offline', { graphiql: page });
    expect(leaks).toEqual([]);
    expect(sameOrigin.every((url) => url.startsWith(`${base}/`) || url.startsWith('blob:') || url.startsWith('data:'))).toBe(true);
    expect(errors).toEqual([]);
    await context.close();
  }, 90_000);
});
