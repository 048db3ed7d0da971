// The fan-out ceiling: the same deliveries with nothing but node:http and ws. A POST /graphql
// `{ text }` builds the event our messageEvents subscription would deliver (same fields, same JSON
// shape), serializes it once and writes it to every subscriber as a graphql-transport-ws `next`
// message, then answers. It speaks just enough of the protocol (connection_init/ack, subscribe,
// complete, ping/pong) for the real graphql-ws clients of bench/ws-client.mjs. No authentication,
// no database, no GraphQL execution: what is left is the socket work any server must do.
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { uuidv7 } from '../src/ids.ts';

export interface BareBroadcastServer {
  url: string;
  stop(): Promise<void>;
}

export interface BareEventSource {
  chatId: string;
  sender: { id: string; displayName: string };
}

export async function startBareBroadcastServer({ chatId, sender }: BareEventSource): Promise<BareBroadcastServer> {
  /** Subscription ids per socket. */
  const subscriptions = new Map<WebSocket, Set<string>>();
  let seq = 0;

  const broadcast = (text: string) => {
    seq++;
    const message = { id: uuidv7(), seq, text, createdAt: new Date().toISOString(), sender };
    const payload = JSON.stringify({ data: { messageEvents: { type: 'CREATED', chatId, seq, message } } });
    for (const [socket, ids] of subscriptions) {
      for (const id of ids) socket.send(`{"id":${JSON.stringify(id)},"type":"next","payload":${payload}}`);
    }
    return message;
  };

  const server = createServer(async (request, response) => {
    if (request.method !== 'POST') {
      response.writeHead(405).end();
      return;
    }
    const { text } = JSON.parse(await readBody(request)) as { text: string };
    const message = broadcast(text);
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: { sendMessage: { id: message.id, seq: message.seq } } }));
  });

  // ws picks the client's first offered subprotocol, graphql-transport-ws, as graphql-ws expects.
  const wss = new WebSocketServer({ server, path: '/graphql' });
  wss.on('connection', (socket) => {
    subscriptions.set(socket, new Set());
    socket.on('message', (data: RawData) => {
      const message = JSON.parse(data.toString()) as { type: string; id?: string };
      if (message.type === 'connection_init') socket.send('{"type":"connection_ack"}');
      else if (message.type === 'subscribe') subscriptions.get(socket)?.add(message.id!);
      else if (message.type === 'complete') subscriptions.get(socket)?.delete(message.id!);
      else if (message.type === 'ping') socket.send('{"type":"pong"}');
    });
    socket.on('close', () => subscriptions.delete(socket));
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/graphql`,
    async stop() {
      for (const socket of wss.clients) socket.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
