// Calls in tests and benches: devices that hear callEvents over graphql-ws, and real WebRTC peers
// (werift) that signal only through Kocmoc, over those same connections.
import { RTCPeerConnection, type RTCDataChannel, type RTCIceServer } from 'werift';
import type { Connection } from './ws-helpers.ts';

export const CALL_FIELDS =
  'id state media endReason answeredAt endedAt durationSeconds ringing initiator { id } participants { user { id } device { id } joinedAt leftAt }';
export const CALL_EVENTS = `subscription { callEvents { type call { ${CALL_FIELDS} } signal { fromDeviceId kind payload } } }`;
export const START_CALL = `mutation ($input: StartCallInput!) { startCall(input: $input) { ${CALL_FIELDS} } }`;
export const ANSWER_CALL = `mutation ($id: ID!) { answerCall(callId: $id) { ${CALL_FIELDS} } }`;
export const DECLINE_CALL = `mutation ($id: ID!) { declineCall(callId: $id) { ${CALL_FIELDS} } }`;
export const END_CALL = `mutation ($id: ID!) { endCall(callId: $id) { ${CALL_FIELDS} } }`;
export const SEND_CALL_SIGNAL = `mutation ($input: CallSignalInput!) { sendCallSignal(input: $input) }`;
export const ICE_SERVERS = `{ iceServers { urls username credential } }`;

/** The device session id an access token speaks for (its `sid` claim). */
export function sessionIdOf(accessToken: string): string {
  return JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString('utf8')).sid;
}

/** Runs one query or mutation over a graphql-ws connection. */
export function execute<T = any>(connection: Connection, query: string, variables: Record<string, unknown> = {}) {
  return new Promise<{ data?: T; errors?: any[] }>((resolve, reject) => {
    let result: { data?: T; errors?: any[] } | undefined;
    connection.client.subscribe<T>(
      { query, variables },
      {
        next: (value) => void (result = value as { data?: T; errors?: any[] }),
        error: (error) => (Array.isArray(error) ? resolve({ errors: error }) : reject(error)),
        complete: () => resolve(result ?? {}),
      },
    );
  });
}

export interface CallEventOf {
  type: string;
  call: any;
  signal: { fromDeviceId: string; kind: string; payload: string } | null;
}

export interface CallDevice {
  sessionId: string;
  connection: Connection;
  /** Every callEvents event so far, in order. */
  received: CallEventOf[];
  /** The next event of `type` not taken yet (events of other types stay for their own `next`). */
  next(type: string, timeoutMs?: number): Promise<CallEventOf>;
  /** Whether no event of `type` arrives within `ms`. */
  noneWithin(type: string, ms: number): Promise<boolean>;
  /** Gets each SIGNAL event, in order (a peer sets it). */
  onSignal?: (event: CallEventOf) => void;
  stop(): void;
}

/** A device: its connection and its callEvents subscription (give it a moment to go live). */
export function callDevice(connection: Connection, accessToken: string): CallDevice {
  const received: CallEventOf[] = [];
  const taken = new Map<string, number>();
  const wakes = new Set<() => void>();
  const ofType = (type: string) => received.filter((event) => event.type === type);
  const device: CallDevice = {
    sessionId: sessionIdOf(accessToken),
    connection,
    received,
    async next(type, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const index = taken.get(type) ?? 0;
        const event = ofType(type)[index];
        if (event) {
          taken.set(type, index + 1);
          return event;
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no ${type} call event within ${timeoutMs} ms (got ${received.map((e) => e.type).join(', ') || 'none'})`);
        await new Promise<void>((resolve) => {
          wakes.add(resolve);
          setTimeout(resolve, Math.min(left, 200));
        });
      }
    },
    async noneWithin(type, ms) {
      const before = ofType(type).length;
      await new Promise((resolve) => setTimeout(resolve, ms));
      return ofType(type).length === before;
    },
    stop: () => unsubscribe(),
  };
  const unsubscribe = connection.client.subscribe<{ callEvents: CallEventOf }>(
    { query: CALL_EVENTS },
    {
      next: (value) => {
        const event = value.data?.callEvents;
        if (!event) throw new Error(`callEvents failed: ${JSON.stringify(value.errors)}`);
        received.push(event);
        if (event.type === 'SIGNAL') device.onSignal?.(event);
        for (const wake of wakes) wake();
        wakes.clear();
      },
      error: () => {},
      complete: () => {},
    },
  );
  return device;
}

export interface PeerOptions {
  iceServers?: RTCIceServer[];
  iceTransportPolicy?: 'all' | 'relay';
}

/**
 * A WebRTC peer of one device in one call. Local ICE candidates wait until the remote device is
 * known (the caller learns it from the answer). `handle` takes each SIGNAL event for the call.
 */
export function webrtcPeer(device: CallDevice, callId: string, options: PeerOptions = {}) {
  const pc = new RTCPeerConnection({ iceServers: options.iceServers ?? [], iceTransportPolicy: options.iceTransportPolicy ?? 'all' });
  const localCandidates: string[] = [];
  const candidateTypes = new Set<string>();
  let remoteDeviceId: string | undefined;
  let sending = Promise.resolve();
  const errors: unknown[] = [];

  const send = (kind: string, payload: string, toDeviceId: string | undefined) => {
    sending = sending.then(async () => {
      const result = await execute(device.connection, SEND_CALL_SIGNAL, { input: { callId, toDeviceId, kind, payload } });
      if (result.errors) errors.push(result.errors);
    });
    return sending;
  };
  const flushCandidates = () => {
    for (const candidate of localCandidates.splice(0)) void send('ICE_CANDIDATE', candidate, remoteDeviceId);
  };
  pc.onicecandidate = ({ candidate }) => {
    if (!candidate) return;
    candidateTypes.add(/ typ (\w+)/.exec(candidate.candidate)?.[1] ?? '?');
    localCandidates.push(JSON.stringify(candidate.toJSON()));
    if (remoteDeviceId) flushCandidates();
  };

  const channelOpened = new Promise<RTCDataChannel>((resolve) => {
    pc.ondatachannel = ({ channel }) => channel.stateChanged.subscribe((state) => state === 'open' && resolve(channel));
  });

  return {
    pc,
    errors,
    /** Types (host, srflx, relay) of the candidates this peer gathered. */
    candidateTypes,
    /** The caller: a data channel and an OFFER to every ringing device (or `toDeviceId`). */
    async call(toDeviceId?: string): Promise<RTCDataChannel> {
      const channel = pc.createDataChannel('chat');
      const opened = new Promise<RTCDataChannel>((resolve) => channel.stateChanged.subscribe((state) => state === 'open' && resolve(channel)));
      await pc.setLocalDescription(await pc.createOffer());
      await send('OFFER', JSON.stringify(pc.localDescription), toDeviceId);
      return opened;
    },
    /** The callee's side opens when the caller's channel arrives. */
    channelOpened,
    async handle(signal: { fromDeviceId: string; kind: string; payload: string }) {
      const known = remoteDeviceId !== undefined;
      remoteDeviceId ??= signal.fromDeviceId;
      if (signal.kind === 'OFFER') {
        await pc.setRemoteDescription(JSON.parse(signal.payload));
        await pc.setLocalDescription(await pc.createAnswer());
        await send('ANSWER', JSON.stringify(pc.localDescription), remoteDeviceId);
      } else if (signal.kind === 'ANSWER') {
        await pc.setRemoteDescription(JSON.parse(signal.payload));
      } else if (signal.kind === 'ICE_CANDIDATE') {
        await pc.addIceCandidate(JSON.parse(signal.payload));
      }
      if (!known) flushCandidates();
    },
    /** Takes the device's SIGNAL events of this call, one after another. */
    attach() {
      let handling = Promise.resolve();
      device.onSignal = (event) => {
        if (event.call.id !== callId || !event.signal) return;
        const signal = event.signal;
        handling = handling.then(() => this.handle(signal)).catch((error) => void errors.push(error));
      };
    },
    async close() {
      await pc.close();
    },
  };
}

export type WebrtcPeer = ReturnType<typeof webrtcPeer>;
