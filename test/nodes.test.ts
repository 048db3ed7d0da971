// Relay object identification: node(id)/nodes(ids) answer every Node type by the id its typed
// fields show, and null (never an error) for what the viewer may not see.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { addDevice, signInAgain } from './support/devices.ts';
import { codeOf, createChat, gql, registerUser, sendText, startUploadTestApp, uploadThroughFetch, type TestUser } from './support/helpers.ts';

const NODES = `query ($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }`;
const NODE = `query ($id: ID!) { node(id: $id) { __typename id ... on Chat { title } ... on ChatMember { role user { id } } ... on Message { text } ... on Device { lastSeenAt user { id } } } }`;

let app: App;
let stop: () => Promise<void>;
let alice: TestUser;
let bob: TestUser;
let carol: TestUser;
/** One id of every Node type, all of them alice's to see. */
const ids = {} as Record<string, string>;

async function ask(user: TestUser, query: string, variables: Record<string, unknown>) {
  const result = await gql(app, query, variables, { token: user.accessToken });
  if (result.errors) throw new Error(JSON.stringify(result.errors));
  return result.data;
}

beforeAll(async () => {
  ({ app, stop } = await startUploadTestApp());
  [alice, bob, carol] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
  const chatId = await createChat(app, alice, { kind: 'GROUP', title: 'Node club', memberIds: [bob.id] });
  const attachment = await uploadThroughFetch(app, alice.accessToken, new TextEncoder().encode('notes'), { kind: 'FILE', name: 'notes.txt' });
  await ask(alice, 'mutation ($input: SendMessageInput!) { sendMessage(input: $input) { id } }', {
    input: { chatId, kind: 'FILE', attachmentId: attachment.id },
  });
  const message = await sendText(app, alice, chatId, 'first words');
  const edited = await ask(alice, 'mutation ($id: ID!) { editMessage(id: $id, text: "second words") { edits { id } } }', { id: message.id });
  const call = await ask(alice, 'mutation ($input: StartCallInput!) { startCall(input: $input) { id participants { id } } }', { input: { chatId, media: 'AUDIO' } });
  const seen = await ask(alice, `query ($c: ID!) { chat(id: $c) { members(first: 5) { edges { node { id user { id } } } } } sessions { id } }`, { c: chatId });
  const session = await app.services.prisma.session.findUniqueOrThrow({ where: { id: seen.sessions[0].id } });
  // Bob's first session holds keys (a Device); his second, keyless, joins the call (a CallDevice).
  const bobsDevice = await addDevice(app, bob);
  const bobsPhone = await signInAgain(app, bob);
  const answered = await gql(app, 'mutation ($id: ID!) { answerCall(callId: $id) { participants { device { id } } } }', { id: call.startCall.id }, { token: bobsPhone });
  const phoneId = answered.data.answerCall.participants.map((participant: any) => participant.device.id).find((id: string) => id !== session.id && id !== bobsDevice.id);
  const push = await app.services.prisma.pushSubscription.create({
    data: { userId: alice.id, sessionId: session.id, endpoint: `https://push.example/${randomUUID()}`, p256dh: 'p', auth: 'a' },
  });
  const scheduled = await ask(alice, 'mutation ($input: ScheduleMessageInput!) { scheduleMessage(input: $input) { id } }', {
    input: { chatId, kind: 'TEXT', text: 'later', sendAt: new Date(Date.now() + 3600_000).toISOString() },
  });
  Object.assign(ids, {
    User: alice.id,
    Chat: chatId,
    ChatMember: seen.chat.members.edges.find((edge: any) => edge.node.user.id === bob.id).node.id,
    Message: message.id,
    MessageEdit: edited.editMessage.edits[0].id,
    Attachment: attachment.id,
    Call: call.startCall.id,
    CallParticipant: call.startCall.participants[0].id,
    DeviceSession: session.id,
    Device: bobsDevice.id,
    CallDevice: phoneId,
    PushSubscription: push.id,
    ScheduledMessage: scheduled.scheduleMessage.id,
  });
});
afterAll(async () => {
  await stop?.();
});

describe('node(id)', () => {
  it('round-trips every Node type: the id a typed field shows comes back as the same object', async () => {
    const types = Object.keys(ids);
    expect(types).toHaveLength(13);
    const { nodes } = await ask(alice, NODES, { ids: Object.values(ids) });
    expect(nodes).toEqual(types.map((type) => ({ __typename: type, id: ids[type] })));
    for (const type of types) {
      const { node } = await ask(alice, NODE, { id: ids[type] });
      expect(node).toMatchObject({ __typename: type, id: ids[type] });
    }
  });

  it('resolves the typed fields of what it finds', async () => {
    expect((await ask(alice, NODE, { id: ids.Chat })).node).toMatchObject({ title: 'Node club' });
    expect((await ask(alice, NODE, { id: ids.Message })).node).toMatchObject({ text: 'second words' });
    expect((await ask(alice, NODE, { id: ids.ChatMember })).node).toMatchObject({ role: 'MEMBER', user: { id: bob.id } });
    expect((await ask(alice, NODE, { id: ids.Device })).node).toMatchObject({ lastSeenAt: expect.any(String), user: { id: bob.id } });
  });

  it('is null, without an error, for what the viewer may not see: an outsider sees only the user and the device keys', async () => {
    const { nodes } = await ask(carol, NODES, { ids: Object.values(ids) });
    const visibleToAnyone = ['User', 'Device'];
    expect(nodes).toEqual(Object.keys(ids).map((type) => (visibleToAnyone.includes(type) ? { __typename: type, id: ids[type] } : null)));
    for (const type of ['Chat', 'ChatMember', 'Message', 'Attachment', 'Call', 'CallDevice']) {
      const result = await gql(app, NODE, { id: ids[type] }, { token: carol.accessToken });
      expect(result.errors).toBeUndefined();
      expect(result.data.node).toBeNull();
    }
  });

  it("shows a member the chat's objects, another member's session only as the device in their call, never a push subscription", async () => {
    const { nodes } = await ask(bob, NODES, { ids: Object.values(ids) });
    const visible = Object.keys(ids).filter((_type, index) => nodes[index] !== null);
    expect(visible).toEqual(['User', 'Chat', 'ChatMember', 'Message', 'MessageEdit', 'Attachment', 'Call', 'CallParticipant', 'DeviceSession', 'Device', 'CallDevice']);
    expect(nodes[visible.indexOf('DeviceSession')]).toEqual({ __typename: 'CallDevice', id: ids.DeviceSession });
  });

  it("answers a device session as its widest view the viewer may see: the owner's DeviceSession, then Device, then CallDevice", async () => {
    const { nodes } = await ask(bob, NODES, { ids: [ids.Device, ids.CallDevice] });
    expect(nodes).toEqual([
      { __typename: 'DeviceSession', id: ids.Device },
      { __typename: 'DeviceSession', id: ids.CallDevice },
    ]);
    await gql(app, 'mutation ($id: ID!) { revokeSession(id: $id) }', { id: ids.CallDevice }, { token: bob.accessToken });
    // Ended, it is no DeviceSession of bob's any more, but still a device that was in their call.
    for (const viewer of [bob, alice]) expect((await ask(viewer, NODE, { id: ids.CallDevice })).node).toEqual({ __typename: 'CallDevice', id: ids.CallDevice });
    expect((await ask(carol, NODE, { id: ids.CallDevice })).node).toBeNull();
  });

  it('answers null for unknown and malformed ids, in order, and refuses more than 100', async () => {
    const { nodes } = await ask(alice, NODES, { ids: [randomUUID(), ids.Chat, 'not-an-id', `${ids.Chat}:${randomUUID()}`, 'a:b:c'] });
    expect(nodes).toEqual([null, { __typename: 'Chat', id: ids.Chat }, null, null, null]);
    const tooMany = await gql(app, NODES, { ids: Array.from({ length: 101 }, () => randomUUID()) }, { token: alice.accessToken });
    expect(codeOf(tooMany)).toBe('BAD_USER_INPUT');
  });

  it('needs a signed-in viewer', async () => {
    expect(codeOf(await gql(app, NODE, { id: ids.User }))).toBe('UNAUTHENTICATED');
  });
});
