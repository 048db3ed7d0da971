// Finding 7 of issue #14 (the event part): the MEMBER_REMOVED event resolved the chat's last
// messages and member list for the member who had just been removed. Now the one removed (or who
// left) gets the chat id and the removal; the chat itself is null to them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { createChat, gql, registerUser, sendText, startTestApp, type TestUser } from './support/helpers.ts';
import { LEAVE_CHAT, REMOVE_CHAT_MEMBER } from './support/operations.ts';
import { openConnections, settle, subscribe } from './support/ws-helpers.ts';

/** What a curious client asks of every chat event: everything the chat shows. */
const NOSY_CHAT_EVENTS = `subscription { chatEvents { type chatId user { id } actor { id }
  chat { id title lastMessage { text } members { edges { node { user { id } } } } messages(last: 10) { edges { node { text } } } } } }`;
const sockets = openConnections();
let app: App;
let url: string;
let owner: TestUser;
beforeAll(async () => {
  app = await startTestApp({ PUSH_ENABLED: 'false' });
  url = (await app.start()).url;
  owner = await registerUser(app);
});
afterAll(async () => {
  await sockets.closeAll();
  await app?.stop();
});

async function watch(user: TestUser) {
  const connection = sockets.connect(url, user.accessToken);
  await connection.connected;
  return subscribe(connection, NOSY_CHAT_EVENTS);
}

describe('MEMBER_REMOVED', () => {
  it('carries only the chat id and the removal for the one removed; members still see the chat', async () => {
    const [mallory, friend] = await Promise.all([registerUser(app), registerUser(app)]);
    const chatId = await createChat(app, owner, { kind: 'GROUP', title: 'Secret plans', memberIds: [mallory.id, friend.id] });
    await sendText(app, owner, chatId, 'the plan, for the ones still here');
    const [removed, staying] = await Promise.all([watch(mallory), watch(friend)]);
    await settle();

    await gql(app, REMOVE_CHAT_MEMBER, { chatId, userId: mallory.id }, { token: owner.accessToken });
    const toRemoved = (await removed.next()).data?.chatEvents;
    expect(toRemoved).toEqual({ type: 'MEMBER_REMOVED', chatId, user: { id: mallory.id }, actor: { id: owner.id }, chat: null });
    expect(JSON.stringify(toRemoved)).not.toMatch(/the plan|Secret plans/);

    const toMember = (await staying.next()).data?.chatEvents;
    expect(toMember).toMatchObject({ type: 'MEMBER_REMOVED', chat: { id: chatId, title: 'Secret plans', lastMessage: { text: 'the plan, for the ones still here' } } });
    expect(toMember.chat.members.edges.map((e: any) => e.node.user.id).sort()).toEqual([owner.id, friend.id].sort());
  });

  it('and the same for someone who left', async () => {
    const leaver = await registerUser(app);
    const chatId = await createChat(app, owner, { kind: 'GROUP', title: 'Left behind', memberIds: [leaver.id] });
    const events = await watch(leaver);
    await settle();
    await gql(app, LEAVE_CHAT, { chatId }, { token: leaver.accessToken });
    expect((await events.next()).data?.chatEvents).toMatchObject({ type: 'MEMBER_LEFT', chatId, user: { id: leaver.id }, chat: null });
  });
});
