// Per-request batch loaders for devices and envelopes (composed into src/loaders.ts).
import DataLoader from 'dataloader';
import type { MessageEnvelope, PrismaClient } from '../generated/prisma/client.ts';

export function createDeviceLoaders(prisma: PrismaClient, viewerSessionId: () => string | undefined) {
  return {
    /** One-time pre-keys each device has left. */
    oneTimePreKeyCount: new DataLoader<string, number>(async (deviceIds) => {
      const rows = await prisma.oneTimePreKey.groupBy({ by: ['deviceId'], where: { deviceId: { in: [...deviceIds] } }, _count: true });
      const byDevice = new Map(rows.map((row) => [row.deviceId, row._count]));
      return deviceIds.map((id) => byDevice.get(id) ?? 0);
    }),

    /** The envelope of each message addressed to the viewer's device session (null: none). */
    envelope: new DataLoader<string, MessageEnvelope | null>(async (messageIds) => {
      const deviceId = viewerSessionId();
      if (!deviceId) return messageIds.map(() => null);
      const rows = await prisma.messageEnvelope.findMany({ where: { deviceId, messageId: { in: [...messageIds] } } });
      const byMessage = new Map(rows.map((row) => [row.messageId, row]));
      return messageIds.map((id) => byMessage.get(id) ?? null);
    }),
  };
}
