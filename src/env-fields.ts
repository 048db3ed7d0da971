// The zod fields environment settings are made of, shared by src/env.ts and the groups of settings
// it takes from other modules (src/limits/settings.ts, src/http-settings.ts).
import { z } from 'zod';

/** `15m`, `900s`, `2h`, `30d` or a bare number of seconds. */
const DURATION = /^(\d+)\s*(ms|s|m|h|d)?$/;
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Milliseconds, or undefined when `value` is not a duration. */
export function parseDuration(value: string): number | undefined {
  const match = DURATION.exec(value.trim());
  if (!match) return undefined;
  return Number(match[1]) * UNIT_MS[(match[2] ?? 's') as keyof typeof UNIT_MS];
}

export const duration = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value, ctx) => {
      const ms = parseDuration(value);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: `expected a duration like 15m, 900s, 2h or 30d, got "${value}"` });
        return z.NEVER;
      }
      return ms;
    });

export const port = (fallback: number) => z.coerce.number().int().min(0).max(65_535).default(fallback);
export const flag = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
export const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));
