import type { PrismaClient } from '../generated/prisma/client.ts';

/** Whether either user blocked the other. Direct chats between them are refused. */
export async function isBlockedEitherWay(prisma: PrismaClient, a: string, b: string): Promise<boolean> {
  const block = await prisma.userBlock.findFirst({
    where: { OR: [{ blockerId: a, blockedId: b }, { blockerId: b, blockedId: a }] },
    select: { blockerId: true },
  });
  return block !== null;
}
