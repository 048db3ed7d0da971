// Voice calls in the web client, between two Chromium contexts (two people, own storage and
// sockets) whose microphones are Chromium's fake device (a beeping tone). Nothing is mocked: the
// pages signal through a real server (startCall, answerCall, sendCallSignal, callEvents) and the
// audio goes between them over WebRTC on loopback (host candidates; no TURN). Each page records
// its RTCPeerConnections (an init script), so the test reads their getStats in the page.
import { beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/server/app.ts';
import { createChat, gql, registerUser, startSocketTestApp, type TestUser } from '../support/helpers.ts';
import { browserTestHooks, chromiumMissing, FAKE_MEDIA, isolatedContext, launchBrowser, type Browser, type BrowserContext, type Page } from './support/browser.ts';

/** Polls wait as long as a loaded machine may need (vitest's default is one second). */
const SOON = { timeout: 15_000 };
const LAST_CALL = `query ($id: ID!) { chat(id: $id) { messages(last: 1) { edges { node { kind call { id state endReason durationSeconds } } } } } }`;

let app: App;
let base: string;
let browser: Browser;
let chatId: string;
const users: Record<'ada' | 'bob', TestUser> = {} as never;
const pages: Record<string, Page> = {};
const contexts: Record<string, { context: BrowserContext; errors: string[]; leaks: string[] }> = {};

/** Keeps every RTCPeerConnection the page makes in `window.__peerConnections`, newest last. */
function recordPeerConnections() {
  const Native = window.RTCPeerConnection;
  const made: RTCPeerConnection[] = [];
  Object.defineProperty(window, '__peerConnections', { value: made });
  window.RTCPeerConnection = class extends Native {
    constructor(...args: ConstructorParameters<typeof RTCPeerConnection>) {
      super(...args);
      made.push(this);
    }
  };
}

beforeAll(async () => {
  if (chromiumMissing) return;
  ({ app } = await startSocketTestApp());
  base = new URL((await app.start()).url).origin;
  browser = await launchBrowser(FAKE_MEDIA);
  users.ada = await registerUser(app, { displayName: 'Ada Lovelace' });
  users.bob = await registerUser(app, { displayName: 'Bob Builder' });
  chatId = await createChat(app, users.ada, { kind: 'DIRECT', memberIds: [users.bob.id] });
  for (const who of ['ada', 'bob'] as const) {
    contexts[who] = await isolatedContext(browser, base, { viewport: { width: 900, height: 700 } });
    await contexts[who].context.addInitScript(recordPeerConnections);
    pages[who] = await contexts[who].context.newPage();
    pages[who].setDefaultTimeout(15_000);
  }
  await signIn(pages.ada!, users.ada, 'Bob Builder');
  await signIn(pages.bob!, users.bob, 'Ada Lovelace');
});

browserTestHooks(pages, contexts, async () => {
  await browser?.close();
  await app?.stop();
});

async function signIn(page: Page, user: TestUser, partner: string) {
  await page.goto(`${base}/#/chat/${chatId}`);
  await page.getByLabel('Username or email').fill(user.username);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).last().click();
  await page.getByRole('heading', { name: partner }).waitFor();
}

/** Bytes of audio received so far by the page's newest peer connection (its inbound-rtp stats). */
const inboundAudioBytes = (page: Page) =>
  page.evaluate(async () => {
    const pc = (window as unknown as { __peerConnections: RTCPeerConnection[] }).__peerConnections.at(-1);
    let bytes = 0;
    (await pc?.getStats())?.forEach((report: { type: string; kind?: string; bytesReceived?: number }) => {
      if (report.type === 'inbound-rtp' && report.kind === 'audio') bytes += report.bytesReceived ?? 0;
    });
    return bytes;
  });

/** The newest peer connection's state, and whether our microphone track still runs. */
const peerState = (page: Page) =>
  page.evaluate(() => {
    const pc = (window as unknown as { __peerConnections: RTCPeerConnection[] }).__peerConnections.at(-1);
    return { signaling: pc?.signalingState, microphone: pc?.getSenders()[0]?.track?.readyState ?? 'none' };
  });

async function expectAudioFlowing(page: Page) {
  await expect.poll(() => inboundAudioBytes(page), SOON).toBeGreaterThan(0);
  const before = await inboundAudioBytes(page);
  await expect.poll(() => inboundAudioBytes(page), SOON).toBeGreaterThan(before + 1_000);
}

const callButton = (page: Page) => page.getByRole('button', { name: 'Voice call', exact: true });
const callBar = (page: Page) => page.getByTestId('call-bar');
const callEntries = (page: Page) => page.getByRole('list', { name: 'Messages' }).getByTestId('call-entry');

async function lastCall(user: TestUser) {
  const result = await gql(app, LAST_CALL, { id: chatId }, { token: user.accessToken });
  const node = result.data.chat.messages.edges[0].node;
  expect(node.kind).toBe('CALL');
  return node.call as { id: string; state: string; endReason: string | null; durationSeconds: number | null };
}

describe.skipIf(chromiumMissing)('calls in the web client', () => {
  it('A calls, B rings and answers, each hears the other, A hangs up: both show the call ended and its duration', async () => {
    const { ada: a, bob: b } = pages as { ada: Page; bob: Page };
    await callButton(a).click();
    await callBar(a).getByText('Calling…').waitFor();

    const incoming = b.getByRole('region', { name: 'Incoming call' });
    await incoming.getByText('Ada Lovelace is calling you').waitFor();
    // The timeline shows the call while it rings.
    await callEntries(b).getByText('Incoming voice call').waitFor();
    await incoming.getByRole('button', { name: 'Answer' }).click();
    await incoming.waitFor({ state: 'detached' });

    for (const page of [a, b]) await expect.poll(() => callBar(page).getAttribute('data-phase'), SOON).toBe('connected');
    // Each side's remote stream receives audio, and keeps receiving it.
    await Promise.all([expectAudioFlowing(a), expectAudioFlowing(b)]);
    await callEntries(a).getByText('Voice call in progress').waitFor();
    expect(await callButton(a).isDisabled()).toBe(true);
    // The bar counts the call's time.
    await callBar(a).getByTestId('call-state').getByText('0:02').waitFor();

    await callBar(a).getByRole('button', { name: 'Hang up' }).click();
    await expect.poll(() => lastCall(users.ada).then((c) => c.state), SOON).toBe('ENDED');
    const call = await lastCall(users.ada);
    expect(call.endReason).toBe('HANGUP');
    expect(call.durationSeconds).toBeGreaterThanOrEqual(2);
    const duration = `${call.durationSeconds} s`;
    for (const page of [a, b]) {
      await callBar(page).getByTestId('call-state').getByText(`Call ended, ${duration}`).waitFor();
      // The media stopped: the connection closed and the microphone was released.
      await expect.poll(() => peerState(page), SOON).toEqual({ signaling: 'closed', microphone: 'ended' });
      // The timeline's CALL message, with its duration, on both sides.
      await callEntries(page).getByText(`Voice call, ${duration}`).waitFor();
    }
    // The chat list says it too.
    await b.getByRole('list', { name: 'Chats' }).getByText(`Voice call, ${duration}`).waitFor();
    expect(await callButton(a).isDisabled()).toBe(false);
  });

  it('B declines: A sees it declined, and the timeline says so on both sides', async () => {
    const { ada: a, bob: b } = pages as { ada: Page; bob: Page };
    await callButton(a).click();
    await b.getByRole('region', { name: 'Incoming call' }).getByRole('button', { name: 'Decline' }).click();
    await callBar(a).getByTestId('call-state').getByText('Declined').waitFor();
    await b.getByRole('region', { name: 'Incoming call' }).waitFor({ state: 'detached' });
    expect(await b.getByTestId('call-bar').count()).toBe(0);
    await callEntries(a).last().getByText('Voice call, declined').waitFor();
    await callEntries(b).last().getByText('Declined voice call').waitFor();
    expect(await lastCall(users.bob)).toMatchObject({ state: 'ENDED', endReason: 'DECLINED', durationSeconds: null });
    await expect.poll(() => peerState(a), SOON).toEqual({ signaling: 'closed', microphone: 'ended' });
  });

  it('A hangs up before B answers: B stops ringing and sees a missed call', async () => {
    const { ada: a, bob: b } = pages as { ada: Page; bob: Page };
    await callButton(a).click();
    const incoming = b.getByRole('region', { name: 'Incoming call' });
    await incoming.waitFor();
    await callBar(a).getByRole('button', { name: 'Hang up' }).click();
    await incoming.waitFor({ state: 'detached' });
    await callBar(a).getByTestId('call-state').getByText('Call cancelled').waitFor();
    await callEntries(a).last().getByText('Voice call, cancelled').waitFor();
    await callEntries(b).last().getByText('Missed voice call').waitFor();
    expect(await lastCall(users.ada)).toMatchObject({ state: 'ENDED', endReason: 'HANGUP', durationSeconds: null });
  });

  it('a page opened while the call already rings (its first offer missed) rings, answers and connects; B hangs up', async () => {
    const { ada: a, bob: b } = pages as { ada: Page; bob: Page };
    await b.goto('about:blank');
    await callButton(a).click();
    await callBar(a).getByText('Calling…').waitFor();
    await expect.poll(() => lastCall(users.bob).then((c) => c.state), SOON).toBe('RINGING');

    // The stored session resumes, and callEvents says at once that a call rings this device.
    await b.goto(`${base}/#/chat/${chatId}`);
    const incoming = b.getByRole('region', { name: 'Incoming call' });
    await incoming.getByRole('button', { name: 'Answer' }).click();
    for (const page of [a, b]) await expect.poll(() => callBar(page).getAttribute('data-phase'), SOON).toBe('connected');
    await Promise.all([expectAudioFlowing(a), expectAudioFlowing(b)]);

    await callBar(b).getByRole('button', { name: 'Hang up' }).click();
    for (const page of [a, b]) await callBar(page).getByTestId('call-state').getByText(/^Call ended, \d+ s$/).waitFor();
    expect(await lastCall(users.ada)).toMatchObject({ state: 'ENDED', endReason: 'HANGUP' });
  });

  it('both call at once (glare): the later start finds the ringing call, joins it, and they talk in one call', async () => {
    const { ada: a, bob: b } = pages as { ada: Page; bob: Page };
    // B's socket brings everything late for a while: B does not see the call ringing before B calls too.
    let lagMs = 0;
    await b.routeWebSocket(/\/graphql$/, (ws) => {
      const server = ws.connectToServer();
      let delivered = Promise.resolve();
      server.onMessage((message) => {
        const at = Date.now() + lagMs;
        delivered = delivered.then(() => new Promise((resolve) => setTimeout(resolve, at - Date.now()))).then(() => ws.send(message));
      });
    });
    await b.reload();
    await b.getByRole('heading', { name: 'Ada Lovelace' }).waitFor();
    const callsBefore = await callEntries(a).count();

    lagMs = 3_000;
    await callButton(a).click();
    await expect.poll(() => lastCall(users.bob).then((c) => c.state), SOON).toBe('RINGING');
    const ringing = await lastCall(users.bob);
    expect(await b.getByRole('region', { name: 'Incoming call' }).count()).toBe(0);
    await callButton(b).click();
    for (const page of [a, b]) await expect.poll(() => callBar(page).getAttribute('data-phase'), SOON).toBe('connected');
    lagMs = 0;
    await Promise.all([expectAudioFlowing(a), expectAudioFlowing(b)]);
    // One call: the one A started, which B joined.
    expect(await lastCall(users.ada)).toMatchObject({ id: ringing.id, state: 'ACTIVE' });
    await expect.poll(() => callEntries(a).count(), SOON).toBe(callsBefore + 1);
    expect(await b.getByRole('region', { name: 'Incoming call' }).count()).toBe(0);

    await callBar(a).getByRole('button', { name: 'Hang up' }).click();
    for (const page of [a, b]) await callBar(page).getByTestId('call-state').getByText(/^Call ended, \d+ s$/).waitFor();
  });
}, 120_000);
