// Headless Chromium for the browser tests: Debian's /usr/bin/chromium (`.ci/run` installs it)
// driven by playwright-core, each test's browser with a fresh profile of its own.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, expect } from 'vitest';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOTS = join(import.meta.dirname, '..', '__screenshots__');

/**
 * Without Chromium (a machine that did not run `.ci/run` or `apt-get install chromium`) the browser
 * tests are skipped, saying so; in CI they run, and fail if it is missing.
 */
export const chromiumMissing = !existsSync(CHROMIUM) && process.env.CI !== 'true';
if (chromiumMissing) console.warn(`${CHROMIUM} not found: skipping the browser tests (apt-get install chromium)`);

/** `extraArgs`: more Chromium switches, e.g. {@link FAKE_MEDIA} for calls. */
export function launchBrowser(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', ...extraArgs],
  });
}

/**
 * A microphone and camera that need no hardware (a beeping tone, a test pattern), granted without
 * asking: getUserMedia works headless, and calls carry real audio between contexts.
 */
export const FAKE_MEDIA = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'];

/**
 * A context (a separate browser profile: own storage, own cookies) whose requests may only go to
 * `origin`: any other is aborted and listed in `leaks`, so a test can assert none was made.
 */
export async function isolatedContext(browser: Browser, origin: string, options: Parameters<Browser['newContext']>[0] = {}) {
  const context = await browser.newContext(options);
  const leaks: string[] = [];
  const errors: string[] = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (new URL(url).origin === origin) return route.continue();
    leaks.push(url);
    return route.abort('blockedbyclient');
  });
  context.on('weberror', (error) => errors.push(error.error().message));
  context.on('console', (message) => {
    // CSP violations and uncaught errors surface as console errors.
    if (message.type() === 'error') errors.push(message.text());
  });
  return { context, leaks, errors };
}

/** Saves a screenshot of each page under test/web/__screenshots__/ (git-ignored), for people to look at. */
export async function screenshots(testName: string, pages: Record<string, Page>): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const slug = testName.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase();
  for (const [who, page] of Object.entries(pages)) {
    if (!page.isClosed()) await page.screenshot({ path: join(SCREENSHOTS, `${slug}--${who}.png`), fullPage: false });
  }
}

/**
 * After each test: its screenshots; then every request of each context stayed on this server, and
 * no page logged an error (a CSP violation would).
 */
async function checkAfterTest(testName: string, pages: Record<string, Page>, contexts: Record<string, { errors: string[]; leaks: string[] }>) {
  await screenshots(testName, pages);
  for (const { leaks, errors } of Object.values(contexts)) {
    expect(leaks).toEqual([]);
    expect(errors.filter((error) => !/Failed to load resource|WebSocket connection/.test(error))).toEqual([]);
  }
}

/**
 * The hooks of a browser test file: {@link checkAfterTest} after each test, and `stop` (the
 * browser, the app) after all of them.
 */
export function browserTestHooks(pages: Record<string, Page>, contexts: Record<string, { errors: string[]; leaks: string[] }>, stop: () => Promise<void>) {
  afterEach(async ({ task }) => {
    if (!chromiumMissing) await checkAfterTest(task.name, pages, contexts);
  });
  afterAll(stop);
}

export type { Browser, BrowserContext, Page };
