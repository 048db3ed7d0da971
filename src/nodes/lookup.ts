// Relay object identification without new ids: a node's id is the id it is stored under (a UUID, the
// one every argument already takes), so stored ids, links and the web client keep working. node(id)
// finds the table that holds it, then loads it only through the same visibility rule as the typed
// fields: anything the viewer may not see is null, exactly like an id that does not exist.
// DeviceSession, Device and CallDevice are three views of one device session and share its id (the
// address of envelopes and call signals): node(id) answers the widest view the viewer may see.
import { chatsOfMember } from '../chats/membership.ts';
import { downloadableBy } from '../files/access.ts';
import { Prisma, type PrismaClient } from '../generated/prisma/client.ts';
import { currentDevice } from '../devices/devices.ts';
import { liveSessionsOf } from '../devices/session-list.ts';

/** Types that implement Node. */
export const NODE_TYPES = [
  'User',
  'Chat',
  'ChatMember',
  'Message',
  'MessageEdit',
  'Attachment',
  'Call',
  'CallParticipant',
  'DeviceSession',
  'Device',
  'CallDevice',
  'PushSubscription',
  'ScheduledMessage',
] as const;
export type NodeType = (typeof NODE_TYPES)[number];

/** A node's row: keyed by id, or (a membership) by its chat and user. */
export type NodeShape = { id: string } | { chatId: string; userId: string };

/** A loaded row, tagged with its GraphQL type for the Node interface's resolveType. */
export type NodeValue = NodeShape & { __typename: NodeType };

// A membership has no id of its own: its id is the pair, which no UUID contains.
const MEMBER_ID_SEPARATOR = ':';

/** ChatMember.id: `<chatId>:<userId>`. */
export const chatMemberId = (member: { chatId: string; userId: string }) => `${member.chatId}${MEMBER_ID_SEPARATOR}${member.userId}`;

function parseChatMemberId(id: string): { chatId: string; userId: string } | null {
  const [chatId, userId, ...rest] = id.split(MEMBER_ID_SEPARATOR);
  return chatId && userId && rest.length === 0 ? { chatId, userId } : null;
}

/** The views of a device session after DeviceSession, widest first, for ids the viewer may not see as one. */
type DeviceView = 'Device' | 'CallDevice';
type RowTable = Exclude<NodeType, 'ChatMember' | DeviceView>;

/** The table of each id-keyed node type (Prisma's default names: the model's). */
const TABLES: Record<RowTable, string> = {
  User: 'User',
  Chat: 'Chat',
  Message: 'Message',
  MessageEdit: 'MessageEdit',
  Attachment: 'Attachment',
  Call: 'Call',
  CallParticipant: 'CallParticipant',
  DeviceSession: 'Session',
  PushSubscription: 'PushSubscription',
  ScheduledMessage: 'ScheduledMessage',
};

/** Loads the visible rows of one type among `ids`. */
function visibleRows(prisma: PrismaClient, type: RowTable, ids: string[], viewerId: string): Promise<Array<{ id: string }>> {
  const id = { in: ids };
  switch (type) {
    case 'User':
      return prisma.user.findMany({ where: { id } });
    case 'Chat':
      return prisma.chat.findMany({ where: { id, ...chatsOfMember(viewerId) } });
    case 'Message':
      return prisma.message.findMany({ where: { id, chat: chatsOfMember(viewerId) } });
    case 'MessageEdit':
      return prisma.messageEdit.findMany({ where: { id, message: { chat: chatsOfMember(viewerId) } } });
    case 'Attachment':
      return prisma.attachment.findMany({ where: { id, ...downloadableBy(viewerId) } });
    case 'Call':
      return prisma.call.findMany({ where: { id, members: { some: { userId: viewerId } } } });
    case 'CallParticipant':
      return prisma.callParticipant.findMany({ where: { id, call: { members: { some: { userId: viewerId } } } } });
    case 'DeviceSession':
      return prisma.session.findMany({ where: { id, ...liveSessionsOf(viewerId) } });
    case 'PushSubscription':
      return prisma.pushSubscription.findMany({ where: { id, userId: viewerId } });
    case 'ScheduledMessage':
      return prisma.scheduledMessage.findMany({ where: { id, senderId: viewerId } });
  }
}

/** Which table holds each id: one query over all of them (primary-key lookups). */
async function typesOf(prisma: PrismaClient, ids: string[]): Promise<Map<string, RowTable>> {
  const selects = Object.entries(TABLES).map(
    ([type, table]) => Prisma.sql`SELECT ${type}::text AS type, id FROM ${Prisma.raw(`"${table}"`)} WHERE id IN (${Prisma.join(ids)})`,
  );
  const rows = await prisma.$queryRaw<Array<{ type: RowTable; id: string }>>(Prisma.join(selects, ' UNION ALL '));
  return new Map(rows.map((row) => [row.id, row.type]));
}

/**
 * The session ids the viewer may not see as DeviceSessions (not theirs) as the next view they may:
 * a Device (a live session with keys: anyone's, as User.devices), else a CallDevice (a device in a
 * call of the viewer's, as CallParticipant.device).
 */
async function visibleDevices(prisma: PrismaClient, sessionIds: string[], viewerId: string): Promise<Map<string, NodeValue>> {
  const found = new Map<string, NodeValue>();
  if (sessionIds.length === 0) return found;
  for (const device of await prisma.device.findMany({ where: { id: { in: sessionIds }, ...currentDevice() } })) {
    found.set(device.id, { ...device, __typename: 'Device' });
  }
  const inCalls = sessionIds.filter((id) => !found.has(id));
  if (inCalls.length === 0) return found;
  const participants = await prisma.callParticipant.findMany({
    where: { sessionId: { in: inCalls }, call: { members: { some: { userId: viewerId } } } },
    select: { sessionId: true },
    distinct: ['sessionId'],
  });
  for (const { sessionId } of participants) found.set(sessionId, { id: sessionId, __typename: 'CallDevice' });
  return found;
}

async function visibleMembers(prisma: PrismaClient, ids: string[], viewerId: string): Promise<Map<string, NodeValue>> {
  const pairs = ids.map(parseChatMemberId).filter((pair) => pair !== null);
  if (pairs.length === 0) return new Map();
  const members = await prisma.chatMember.findMany({ where: { OR: pairs, chat: chatsOfMember(viewerId) } });
  return new Map(members.map((member) => [chatMemberId(member), { ...member, __typename: 'ChatMember' as const }]));
}

/** The nodes for `ids`, in order; null for each id that does not exist or that the viewer may not see. */
export async function findNodes(prisma: PrismaClient, viewerId: string, ids: readonly string[]): Promise<Array<NodeValue | null>> {
  const unique = [...new Set(ids)];
  const memberIds = unique.filter((id) => id.includes(MEMBER_ID_SEPARATOR));
  const rowIds = unique.filter((id) => !id.includes(MEMBER_ID_SEPARATOR));
  const found = await visibleMembers(prisma, memberIds, viewerId);
  const types = rowIds.length > 0 ? await typesOf(prisma, rowIds) : new Map<string, RowTable>();
  const byType = new Map<RowTable, string[]>();
  for (const [id, type] of types) byType.set(type, [...(byType.get(type) ?? []), id]);
  await Promise.all(
    [...byType].map(async ([type, typeIds]) => {
      for (const row of await visibleRows(prisma, type, typeIds, viewerId)) found.set(row.id, { ...row, __typename: type });
      if (type === 'DeviceSession') {
        const others = typeIds.filter((id) => !found.has(id));
        for (const [id, device] of await visibleDevices(prisma, others, viewerId)) found.set(id, device);
      }
    }),
  );
  return ids.map((id) => found.get(id) ?? null);
}
