// An example end-to-end encryption client, as small as it can be while being real: X3DH to agree a
// key with a device, then the Double Ratchet for every message (Signal's specifications:
// https://signal.org/docs/specifications/x3dh/ and .../doubleratchet/). The tests use it to prove the
// server relays ciphertext it cannot read; developers can read it to see what a client does. Use
// libsignal or vodozemac in an app: this has no persistence, no sender keys and no identity UI.
//
// Wire format (ours, not Signal's): an envelope's ciphertext is base64 of a JSON object. A
// PREKEY_MESSAGE (a session's first messages, until the other side answers) carries the X3DH header
// `{ ik, ek, spk, opk }` beside the ratchet message `{ h, ct }`; a MESSAGE carries `{ h, ct }` only.
import { gcm } from '@noble/ciphers/aes.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
const unb64 = (text: string) => new Uint8Array(Buffer.from(text, 'base64'));
const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
const utf8 = (text: string) => new TextEncoder().encode(text);
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

interface KeyPair {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

const x25519Pair = (): KeyPair => x25519.keygen();

/** Everything secret a device holds. The server sees only the public halves. */
export interface DeviceKeys {
  /** Ed25519: signs the signed pre-key; its X25519 form takes part in X3DH. */
  identity: KeyPair;
  signedPreKey: KeyPair & { keyId: number; signature: Uint8Array };
  /** Kept until a PREKEY_MESSAGE uses one; then deleted (that is what makes them one-time). */
  oneTimePreKeys: Map<number, KeyPair>;
  nextOneTimeKeyId: number;
}

export function generateDeviceKeys(): DeviceKeys {
  const identity = ed25519.keygen();
  const signed = x25519Pair();
  return {
    identity,
    signedPreKey: { keyId: 1, ...signed, signature: ed25519.sign(signed.publicKey, identity.secretKey) },
    oneTimePreKeys: new Map(),
    nextOneTimeKeyId: 1,
  };
}

/** Makes `count` new one-time pre-keys and returns them as uploadDeviceKeys takes them. */
export function newOneTimePreKeys(keys: DeviceKeys, count: number) {
  return Array.from({ length: count }, () => {
    const keyId = keys.nextOneTimeKeyId++;
    const pair = x25519Pair();
    keys.oneTimePreKeys.set(keyId, pair);
    return { keyId, publicKey: b64(pair.publicKey) };
  });
}

/** The input of uploadDeviceKeys, with `oneTimeCount` fresh one-time pre-keys. */
export function uploadInput(keys: DeviceKeys, oneTimeCount = 0) {
  const { signedPreKey } = keys;
  return {
    identityKey: b64(keys.identity.publicKey),
    signedPreKey: { keyId: signedPreKey.keyId, publicKey: b64(signedPreKey.publicKey), signature: b64(signedPreKey.signature) },
    oneTimePreKeys: newOneTimePreKeys(keys, oneTimeCount),
  };
}

/** A PreKeyBundle as preKeyBundles answers it. */
export interface Bundle {
  device: { id: string };
  identityKey: string;
  signedPreKey: { keyId: number; publicKey: string; signature: string };
  oneTimePreKey: { keyId: number; publicKey: string } | null;
}

// ---- X3DH ----

/** KDF of X3DH: HKDF-SHA256 over 32 0xFF bytes and the DH outputs (X25519 variant). */
const x3dhKdf = (dhs: Uint8Array[]) => hkdf(sha256, concat(new Uint8Array(32).fill(0xff), ...dhs), new Uint8Array(32), utf8('Kocmoc X3DH'), 32);

interface X3dhHeader {
  /** The initiator's Ed25519 identity key, which the responder checks it trusts. */
  ik: string;
  ek: string;
  spk: number;
  opk: number | null;
}

/** The initiator's half: verify the bundle, then four (or three) DHs. */
function x3dhInitiate(me: DeviceKeys, bundle: Bundle) {
  const theirIdentity = unb64(bundle.identityKey);
  const theirSignedPreKey = unb64(bundle.signedPreKey.publicKey);
  if (!ed25519.verify(unb64(bundle.signedPreKey.signature), theirSignedPreKey, theirIdentity)) throw new Error('bad signed pre-key signature');
  const ephemeral = x25519Pair();
  const myIdentityX = ed25519.utils.toMontgomerySecret(me.identity.secretKey);
  const theirIdentityX = ed25519.utils.toMontgomery(theirIdentity);
  const dhs = [
    x25519.getSharedSecret(myIdentityX, theirSignedPreKey),
    x25519.getSharedSecret(ephemeral.secretKey, theirIdentityX),
    x25519.getSharedSecret(ephemeral.secretKey, theirSignedPreKey),
  ];
  if (bundle.oneTimePreKey) dhs.push(x25519.getSharedSecret(ephemeral.secretKey, unb64(bundle.oneTimePreKey.publicKey)));
  const header: X3dhHeader = { ik: b64(me.identity.publicKey), ek: b64(ephemeral.publicKey), spk: bundle.signedPreKey.keyId, opk: bundle.oneTimePreKey?.keyId ?? null };
  return { sharedKey: x3dhKdf(dhs), ad: concat(me.identity.publicKey, theirIdentity), header, theirSignedPreKey };
}

/** The responder's half, from the header; the one-time pre-key it names is deleted. */
function x3dhRespond(me: DeviceKeys, header: X3dhHeader) {
  if (header.spk !== me.signedPreKey.keyId) throw new Error(`unknown signed pre-key ${header.spk}`);
  const theirIdentity = unb64(header.ik);
  const ephemeral = unb64(header.ek);
  const myIdentityX = ed25519.utils.toMontgomerySecret(me.identity.secretKey);
  const dhs = [
    x25519.getSharedSecret(me.signedPreKey.secretKey, ed25519.utils.toMontgomery(theirIdentity)),
    x25519.getSharedSecret(myIdentityX, ephemeral),
    x25519.getSharedSecret(me.signedPreKey.secretKey, ephemeral),
  ];
  if (header.opk !== null) {
    const oneTime = me.oneTimePreKeys.get(header.opk);
    if (!oneTime) throw new Error(`one-time pre-key ${header.opk} is unknown or used`);
    me.oneTimePreKeys.delete(header.opk);
    dhs.push(x25519.getSharedSecret(oneTime.secretKey, ephemeral));
  }
  return { sharedKey: x3dhKdf(dhs), ad: concat(theirIdentity, me.identity.publicKey) };
}

// ---- Double Ratchet ----

interface RatchetState {
  dhSelf: KeyPair;
  dhRemote: Uint8Array | null;
  rootKey: Uint8Array;
  sendChain: Uint8Array | null;
  receiveChain: Uint8Array | null;
  sent: number;
  received: number;
  previousChainLength: number;
  skipped: Map<string, Uint8Array>;
  /** X3DH's associated data: both identity keys, bound into every message. */
  ad: Uint8Array;
  /** Set on the initiator's side until the first answer: its messages carry this X3DH header. */
  pendingX3dh: X3dhHeader | null;
}

interface RatchetHeader {
  dh: string;
  pn: number;
  n: number;
}

const MAX_SKIP = 100;

function kdfRoot(rootKey: Uint8Array, dhOut: Uint8Array) {
  const out = hkdf(sha256, dhOut, rootKey, utf8('Kocmoc ratchet'), 64);
  return { rootKey: out.slice(0, 32), chainKey: out.slice(32) };
}

function kdfChain(chainKey: Uint8Array) {
  return { messageKey: hmac(sha256, chainKey, Uint8Array.of(1)), chainKey: hmac(sha256, chainKey, Uint8Array.of(2)) };
}

/** AES-256-GCM under a key and nonce derived from the (single-use) message key. */
function aead(messageKey: Uint8Array, ad: Uint8Array) {
  const okm = hkdf(sha256, messageKey, new Uint8Array(32), utf8('Kocmoc message'), 44);
  return gcm(okm.slice(0, 32), okm.slice(32), ad);
}

const headerBytes = (state: RatchetState, header: RatchetHeader) => concat(state.ad, utf8(JSON.stringify(header)));

function ratchetEncrypt(state: RatchetState, plaintext: Uint8Array) {
  const { messageKey, chainKey } = kdfChain(state.sendChain!);
  state.sendChain = chainKey;
  const header: RatchetHeader = { dh: b64(state.dhSelf.publicKey), pn: state.previousChainLength, n: state.sent++ };
  return { h: header, ct: b64(aead(messageKey, headerBytes(state, header)).encrypt(plaintext)) };
}

function skipTo(state: RatchetState, until: number) {
  if (!state.receiveChain) return;
  if (until - state.received > MAX_SKIP) throw new Error('too many skipped messages');
  while (state.received < until) {
    const { messageKey, chainKey } = kdfChain(state.receiveChain);
    state.receiveChain = chainKey;
    state.skipped.set(`${hex(state.dhRemote!)}:${state.received++}`, messageKey);
  }
}

function ratchetDecrypt(state: RatchetState, message: { h: RatchetHeader; ct: string }) {
  const { h: header } = message;
  const skippedKey = `${hex(unb64(header.dh))}:${header.n}`;
  let messageKey = state.skipped.get(skippedKey);
  if (messageKey) {
    state.skipped.delete(skippedKey);
  } else {
    const remote = unb64(header.dh);
    if (!state.dhRemote || hex(remote) !== hex(state.dhRemote)) {
      // A new ratchet key from the other side: a DH ratchet step, receiving then sending.
      skipTo(state, header.pn);
      state.previousChainLength = state.sent;
      state.sent = 0;
      state.received = 0;
      state.dhRemote = remote;
      ({ rootKey: state.rootKey, chainKey: state.receiveChain } = kdfRoot(state.rootKey, x25519.getSharedSecret(state.dhSelf.secretKey, remote)));
      state.dhSelf = x25519Pair();
      ({ rootKey: state.rootKey, chainKey: state.sendChain } = kdfRoot(state.rootKey, x25519.getSharedSecret(state.dhSelf.secretKey, remote)));
      // The other side answered: our later messages need no X3DH header any more.
      state.pendingX3dh = null;
    }
    skipTo(state, header.n);
    ({ messageKey, chainKey: state.receiveChain } = kdfChain(state.receiveChain!));
    state.received += 1;
  }
  return aead(messageKey, headerBytes(state, header)).decrypt(unb64(message.ct));
}

// ---- a device ----

export interface E2EDevice {
  /** The device session id, once known (Device.id): envelopes are addressed to it. */
  id: string;
  keys: DeviceKeys;
  /** One ratchet per peer device id. */
  sessions: Map<string, RatchetState>;
}

export function newDevice(id: string, keys = generateDeviceKeys()): E2EDevice {
  return { id, keys, sessions: new Map() };
}

export interface OutgoingEnvelope {
  deviceId: string;
  type: 'PREKEY_MESSAGE' | 'MESSAGE';
  ciphertext: string;
}

/** Starts a session with a device from its bundle (X3DH as initiator). */
export function startSession(me: E2EDevice, bundle: Bundle) {
  const { sharedKey, ad, header, theirSignedPreKey } = x3dhInitiate(me.keys, bundle);
  const dhSelf = x25519Pair();
  const { rootKey, chainKey } = kdfRoot(sharedKey, x25519.getSharedSecret(dhSelf.secretKey, theirSignedPreKey));
  me.sessions.set(bundle.device.id, {
    dhSelf, dhRemote: theirSignedPreKey, rootKey, sendChain: chainKey, receiveChain: null,
    sent: 0, received: 0, previousChainLength: 0, skipped: new Map(), ad, pendingX3dh: header,
  });
}

/** One envelope for a device we have a session with. */
export function encryptFor(me: E2EDevice, deviceId: string, plaintext: string): OutgoingEnvelope {
  const state = me.sessions.get(deviceId);
  if (!state) throw new Error(`no session with device ${deviceId}: fetch its bundle`);
  const message = ratchetEncrypt(state, utf8(plaintext));
  const body = state.pendingX3dh ? { ...state.pendingX3dh, ...message } : message;
  return { deviceId, type: state.pendingX3dh ? 'PREKEY_MESSAGE' : 'MESSAGE', ciphertext: b64(utf8(JSON.stringify(body))) };
}

/** Opens an envelope from `senderDeviceId`; a PREKEY_MESSAGE from a new device starts the session (X3DH as responder). */
export function decryptEnvelope(me: E2EDevice, senderDeviceId: string, envelope: { type: string; ciphertext: string }): string {
  const body = JSON.parse(Buffer.from(envelope.ciphertext, 'base64').toString('utf8')) as X3dhHeader & { h: RatchetHeader; ct: string };
  let state = me.sessions.get(senderDeviceId);
  if (!state) {
    if (envelope.type !== 'PREKEY_MESSAGE') throw new Error('a MESSAGE from a device we have no session with');
    const { sharedKey, ad } = x3dhRespond(me.keys, body);
    state = {
      dhSelf: { secretKey: me.keys.signedPreKey.secretKey, publicKey: me.keys.signedPreKey.publicKey }, dhRemote: null, rootKey: sharedKey,
      sendChain: null, receiveChain: null, sent: 0, received: 0, previousChainLength: 0, skipped: new Map(), ad, pendingX3dh: null,
    };
    me.sessions.set(senderDeviceId, state);
  }
  return new TextDecoder().decode(ratchetDecrypt(state, body));
}

/** Every secret this client holds, hex and base64, so a test can look for them where they must not be. */
export function secretsOf(device: E2EDevice): string[] {
  const { keys } = device;
  const secrets = [keys.identity.secretKey, keys.signedPreKey.secretKey, ...[...keys.oneTimePreKeys.values()].map((pair) => pair.secretKey)];
  for (const state of device.sessions.values()) {
    secrets.push(state.rootKey, state.dhSelf.secretKey, ...[state.sendChain, state.receiveChain].filter((key): key is Uint8Array => key !== null));
  }
  return secrets.flatMap((secret) => [hex(secret), b64(secret)]);
}

export { randomBytes };
