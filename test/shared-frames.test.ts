// One message to several subscribers of the same operation: its `next` payload is serialised once
// on the server and every socket gets a text frame around the same bytes, written without
// graphql-ws (src/server/shared-frames.ts); a reader that stops reading is cut off, not buffered for.
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import type { App } from '../src/server/app.ts';
import { attachFrameSink, frameSinkOf, SOCKET_BACKLOG_MAX_BYTES, type FrameWrite } from '../src/server/shared-frames.ts';
import { createChat, registerUser, sendText, startSocketTestApp, type TestUser } from './support/helpers.ts';
import { MESSAGE_EVENTS } from './support/operations.ts';
import { settle } from './support/ws-helpers.ts';

let app: App;
let url: string;
const sockets: WebSocket[] = [];

beforeAll(async () => {
  ({ app, url } = await startSocketTestApp({ PUSH_ENABLED: 'false' }));
});
afterAll(async () => {
  for (const socket of sockets) socket.close();
  await app?.stop();
});

interface Frame {
  text: string;
  binary: boolean;
}

/** A bare graphql-transport-ws client: every frame it receives after the ack, as sent. */
async function rawSubscriber(user: TestUser, id: string, chatId: string): Promise<Frame[]> {
  const socket = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws');
  sockets.push(socket);
  const frames: Frame[] = [];
  await new Promise((resolve) => socket.once('open', resolve));
  const acked = new Promise<void>((resolve) =>
    socket.on('message', (data, binary) => {
      const text = String(data);
      if (JSON.parse(text).type === 'connection_ack') resolve();
      else frames.push({ text, binary });
    }),
  );
  socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${user.accessToken}` } }));
  await acked;
  socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query: MESSAGE_EVENTS, variables: { chatId } } }));
  return frames;
}

describe('shared next payloads', () => {
  it('serialises one payload for all subscribers and sends each a text frame of it', async () => {
    const [sender, ...members] = await Promise.all([registerUser(app), registerUser(app), registerUser(app), registerUser(app)]);
    const chatId = await createChat(app, sender, { kind: 'GROUP', title: 'Shared frames', memberIds: members.map((m) => m.id) });
    const received = await Promise.all(members.map((member, i) => rawSubscriber(member, `sub-${i}`, chatId)));
    await settle();

    const stringify = JSON.stringify;
    let payloadsSerialised = 0;
    JSON.stringify = ((...args: Parameters<typeof stringify>) => {
      const text = stringify(...args);
      if (typeof text === 'string' && text.includes('"messageEvents"')) payloadsSerialised += 1;
      return text;
    }) as typeof stringify;
    let sent: Awaited<ReturnType<typeof sendText>>;
    try {
      sent = await sendText(app, sender, chatId, 'one payload, three sockets');
      for (let i = 0; i < 50 && received.some((frames) => frames.length === 0); i++) await settle(20);
    } finally {
      JSON.stringify = stringify;
    }

    expect(payloadsSerialised).toBe(1);
    const payloads = received.map((frames, i) => {
      expect(frames).toHaveLength(1);
      const [frame] = frames as [Frame];
      expect(frame.binary).toBe(false);
      const message = JSON.parse(frame.text);
      expect(message).toMatchObject({ id: `sub-${i}`, type: 'next' });
      expect(message.payload.data.messageEvents).toMatchObject({ type: 'CREATED', seq: sent.seq, message: { id: sent.id, text: 'one payload, three sockets' } });
      return frame.text.slice(frame.text.indexOf('"payload":'));
    });
    expect(new Set(payloads).size).toBe(1);
  });
});

/** The TCP socket under a ws client, to stop and resume reading. */
const tcpOf = (client: WebSocket) => (client as unknown as { _socket: Socket })._socket;

describe('frames written to a socket', () => {
  it('go out in order as text frames until the reader is SOCKET_BACKLOG_MAX_BYTES behind, then not at all; nothing once it closes', async () => {
    const server = createServer();
    const wss = new WebSocketServer({ server });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const accepted = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
      const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
      const frames: Array<{ text: string; binary: boolean }> = [];
      client.on('message', (data, binary) => frames.push({ text: String(data), binary }));
      await new Promise((resolve) => client.once('open', resolve));
      const socket = await accepted;
      const context = {};
      attachFrameSink(context, socket, 'op "1"');
      const sink = frameSinkOf(context)!;
      expect(frameSinkOf({})).toBeUndefined();

      // The client stops reading: the kernel's buffers fill, then the server's queue grows.
      tcpOf(client).pause();
      const big = 'x'.repeat(64 * 1024);
      const outcomes: FrameWrite[] = [];
      for (let i = 0; i < 2_000 && outcomes.at(-1) !== 'behind'; i++) {
        outcomes.push(sink.write({ data: { n: i, big } }));
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(outcomes.at(-1)).toBe('behind');
      expect(socket.bufferedAmount).toBeGreaterThan(SOCKET_BACKLOG_MAX_BYTES);
      expect(outcomes.slice(0, -1).every((outcome) => outcome === 'sent')).toBe(true);
      const sent = outcomes.length - 1;

      // Reading again, the client gets every frame written, in order, as graphql-ws would have sent it.
      tcpOf(client).resume();
      for (let i = 0; i < 500 && frames.length < sent; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(frames).toHaveLength(sent);
      frames.forEach((frame, i) => {
        expect(frame.binary).toBe(false);
        expect(JSON.parse(frame.text)).toEqual({ id: 'op "1"', type: 'next', payload: { data: { n: i, big } } });
      });

      client.close();
      await new Promise((resolve) => client.once('close', resolve));
      expect(sink.write({ data: { n: -1 } })).toBe('closed');
    } finally {
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
