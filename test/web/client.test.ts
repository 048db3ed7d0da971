// The web client at / in headless Chromium, as two people use it: Ada on a desktop-sized window,
// Bob on a phone-sized one (360 px), each in a browser context of their own (own storage, own
// sockets). The tests follow one conversation, in order. Nothing is mocked: the client talks to a
// real server over HTTP and graphql-ws, and the server is restarted to cut the sockets.
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/server/app.ts';
import { gql, registerUser, startTestApp, uniqueName, unusedPort, type TestUser } from '../support/helpers.ts';
import { SEND_MESSAGE } from '../support/operations.ts';
import { browserTestHooks, chromiumMissing, isolatedContext, launchBrowser, type Browser, type BrowserContext, type Page } from './support/browser.ts';

const PORT = String(await unusedPort());
// Presence says OFFLINE one second after the last socket closes (a few seconds by default).
const appOptions = { presence: { offlineGraceMs: 1_000 } };

let app: App;
let base: string;
let browser: Browser;
let bob: TestUser;
const ada = { username: uniqueName('ada'), password: 'correct horse battery staple' };
const pages: Record<string, Page> = {};
const contexts: Record<string, { context: BrowserContext; errors: string[]; leaks: string[] }> = {};

beforeAll(async () => {
  if (chromiumMissing) return;
  app = await startTestApp({ PORT }, appOptions);
  base = new URL((await app.start()).url).origin;
  browser = await launchBrowser();
  bob = await registerUser(app, { displayName: 'Bob Builder' });
  contexts.ada = await isolatedContext(browser, base, { viewport: { width: 1100, height: 720 } });
  contexts.bob = await isolatedContext(browser, base, { viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  for (const who of ['ada', 'bob'] as const) {
    pages[who] = await contexts[who]!.context.newPage();
    pages[who].setDefaultTimeout(15_000);
  }
});

browserTestHooks(pages, contexts, async () => {
  await browser?.close();
  await app?.stop();
});

const messageList = (page: Page) => page.getByRole('list', { name: 'Messages' });
const messageTexts = (page: Page) => messageList(page).locator('li.message .text').allTextContents();

async function send(page: Page, text: string) {
  await page.getByRole('textbox', { name: 'Message' }).fill(text);
  await page.getByRole('textbox', { name: 'Message' }).press('Enter');
}

describe.skipIf(chromiumMissing)('the web client', () => {
  it('signs up and in; A starts a direct chat, B sees it live, replies while A sees B typing', async () => {
    const { ada: a, bob: b } = pages as { ada: Page; bob: Page };
    await a.goto(`${base}/`);
    await a.getByRole('tab', { name: 'Create account' }).click();
    await a.getByLabel('Username', { exact: true }).fill(ada.username);
    await a.getByLabel('Display name').fill('Ada Lovelace');
    await a.getByLabel('Email').fill(`${ada.username}@example.com`);
    await a.getByLabel('Password').fill(ada.password);
    await a.getByRole('button', { name: 'Create account' }).last().click();
    await a.getByRole('button', { name: 'New chat' }).click();

    await b.goto(`${base}/`);
    await b.getByLabel('Username or email').fill(bob.username);
    await b.getByLabel('Password').fill('wrong password');
    await b.getByRole('button', { name: 'Sign in' }).last().click();
    // The API's refusal, in words.
    await b.getByRole('alert').filter({ hasText: /password/i }).waitFor();
    await b.getByLabel('Password').fill(bob.password);
    await b.getByRole('button', { name: 'Sign in' }).last().click();
    await b.getByText('No chats yet.').waitFor();

    await a.getByLabel('Search people').fill(bob.username);
    await a.getByRole('button', { name: /Bob Builder/ }).click();
    await a.getByRole('heading', { name: 'Bob Builder' }).waitFor();
    await send(a, 'Hello Bob, this is Ada');

    // Bob's list shows the new chat, its unread count and last message without a reload.
    const chatInB = b.getByRole('list', { name: 'Chats' }).getByRole('button', { name: /Ada Lovelace/ });
    await chatInB.getByText('Hello Bob, this is Ada').waitFor();
    expect(await chatInB.getByTestId('unread').textContent()).toBe('1');
    await chatInB.click();
    await messageList(b).getByText('Hello Bob, this is Ada').waitFor();
    // Seen on screen: marked read, so the count goes.
    await b.getByRole('button', { name: 'Back to chats' }).click();
    await expect.poll(() => chatInB.getByTestId('unread').count()).toBe(0);
    await chatInB.click();

    // Bob replies to it; while he types, Ada sees it.
    await messageList(b).locator('li.message', { hasText: 'Hello Bob' }).getByRole('button', { name: 'Reply' }).click();
    await b.getByRole('textbox', { name: 'Message' }).pressSequentially('Hi Ada!', { delay: 30 });
    await a.getByTestId('typing').filter({ hasText: 'Bob Builder is typing' }).waitFor();
    await b.getByRole('textbox', { name: 'Message' }).press('Enter');
    const reply = messageList(a).locator('li.message', { hasText: 'Hi Ada!' });
    await reply.waitFor();
    expect(await reply.locator('.reply-quote').textContent()).toContain('Hello Bob, this is Ada');
    await a.getByTestId('typing').waitFor({ state: 'detached' });
  });

  it("A uploads an image and B sees its thumbnail", async () => {
    const { ada: a, bob: b } = pages as { ada: Page; bob: Page };
    const png = await sharp({ create: { width: 120, height: 80, channels: 3, background: '#3b5bdb' } }).png().toBuffer();
    await a.getByLabel('Attach a photo or file').setInputFiles({ name: 'blue.png', mimeType: 'image/png', buffer: png });
    const thumbnail = messageList(b).locator('li.message .photo img');
    await thumbnail.waitFor();
    expect(await thumbnail.getAttribute('src')).toMatch(/^https?:\/\/[^/]+\/files\/[\w-]+\/thumbnail\?/);
    // The thumbnail really loaded (from /files/, under the page's CSP).
    await expect.poll(() => thumbnail.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth)).toBeGreaterThan(0);
  });

  it('a reload restores the session from the refresh token, kept alone in storage', async () => {
    const a = pages.ada!;
    await a.reload();
    await messageList(a).getByText('Hi Ada!').waitFor();
    const stored = await a.evaluate(() => Object.fromEntries(Object.entries(localStorage)));
    expect(Object.keys(stored)).toEqual(['kocmoc.refreshToken']);
    expect(stored['kocmoc.refreshToken']).toMatch(/^[\w-]+\.\d+\.[\w-]+$/);
  });

  it('catches up after the server restarts: messages sent meanwhile arrive once, in order', async () => {
    const { ada: a, bob: b } = pages as { ada: Page; bob: Page };
    await send(b, 'before the restart');
    await messageList(a).getByText('before the restart').waitFor();
    const chatId = await a.evaluate(() => location.hash.split('/').pop()!);

    await app.stop();
    await a.getByTestId('reconnecting').waitFor();
    // The next server takes messages before it listens: the clients' sockets missed them.
    app = await startTestApp({ PORT }, appOptions);
    const missed = ['while you were away 1', 'while you were away 2', 'while you were away 3'];
    for (const text of missed) {
      const sent = await gql(app, SEND_MESSAGE, { input: { chatId, kind: 'TEXT', text } }, { token: bob.accessToken });
      expect(sent.errors).toBeUndefined();
    }
    await app.start();

    await a.getByTestId('reconnecting').waitFor({ state: 'detached', timeout: 20_000 });
    await messageList(a).getByText(missed.at(-1)!).waitFor();
    await send(b, 'after the restart');
    await messageList(a).getByText('after the restart').waitFor();
    const texts = await messageTexts(a);
    const tail = texts.slice(texts.indexOf('before the restart'));
    expect(tail).toEqual(['before the restart', ...missed, 'after the restart']);
    expect(new Set(texts).size).toBe(texts.length);
    // The chat list caught up too.
    await a.getByRole('list', { name: 'Chats' }).getByText('after the restart').waitFor();
  });

  it("shows B going offline when B's browser closes", async () => {
    const a = pages.ada!;
    const presence = a.getByTestId('presence');
    await expect.poll(() => presence.getByTestId('presence-dot').getAttribute('data-status')).toBe('ONLINE');
    await contexts.bob!.context.close();
    await expect.poll(() => presence.getByTestId('presence-dot').getAttribute('data-status'), { timeout: 15_000 }).toBe('OFFLINE');
    expect(await presence.textContent()).toContain('last seen');
  });
}, 180_000);
