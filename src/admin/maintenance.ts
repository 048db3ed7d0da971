// Maintenance mode: a database row every instance reads (cached briefly), so switching it on one
// instance reaches all of them and survives restarts.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { PrismaClient } from '../generated/prisma/client.ts';
import type { EventBus } from '../realtime/bus.ts';

export interface MaintenanceState {
  enabled: boolean;
  message: string | null;
  updatedAt: Date | null;
}

const CHANNEL = 'maintenance';
/** What clients are told to wait before retrying a refused mutation. */
export const MAINTENANCE_RETRY_AFTER_SECONDS = 60;

export type Maintenance = ReturnType<typeof createMaintenance>;

export interface MaintenanceOptions {
  prisma: PrismaClient;
  bus: EventBus;
  /** How long an instance trusts its copy of the row; a change also invalidates it at once through the bus. Default 2000 ms. */
  cacheMs?: number;
}

export function createMaintenance({ prisma, bus, cacheMs = 2_000 }: MaintenanceOptions) {
  let cached: { state: Promise<MaintenanceState>; at: number } | undefined;
  let stopListening: (() => void) | undefined;

  const load = async (): Promise<MaintenanceState> => {
    const row = await prisma.maintenance.findUnique({ where: { id: 1 } });
    return { enabled: row?.enabled ?? false, message: row?.message ?? null, updatedAt: row?.updatedAt ?? null };
  };

  return {
    async start() {
      stopListening = await bus.listen(CHANNEL, () => (cached = undefined));
    },
    stop() {
      stopListening?.();
    },
    get(): Promise<MaintenanceState> {
      if (!cached || Date.now() - cached.at > cacheMs) {
        const state = load();
        cached = { state, at: Date.now() };
        state.catch(() => (cached = undefined));
      }
      return cached.state;
    },
    async set(enabled: boolean, message: string | null): Promise<MaintenanceState> {
      const row = await prisma.maintenance.upsert({
        where: { id: 1 },
        create: { id: 1, enabled, message },
        update: { enabled, message },
      });
      cached = undefined;
      await bus.publish(CHANNEL, { enabled });
      return { enabled: row.enabled, message: row.message, updatedAt: row.updatedAt };
    },
  };
}

/**
 * Whether `offered` (the `x-admin-token` header) equals the configured admin token, compared in
 * constant time (hashing first makes the lengths equal). No configured token: never.
 */
export function isAdminToken(configured: string | undefined, offered: string | null | undefined): boolean {
  if (!configured || !offered) return false;
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(configured), digest(offered));
}
