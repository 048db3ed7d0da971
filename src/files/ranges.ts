// HTTP Range requests (RFC 9110 §14), single range only: voice and video players seek with one.
import type { ByteRange } from './storage.ts';

export type RangeRequest =
  /** Serve the whole file (no Range header, or one we ignore as RFC 9110 allows: malformed or multi-range). */
  | { kind: 'whole' }
  | { kind: 'partial'; range: ByteRange }
  /** 416: a well-formed range that lies outside the file. */
  | { kind: 'unsatisfiable' };

const SINGLE_RANGE = /^bytes=(\d*)-(\d*)$/;

/** Interprets a `Range` header value against a file of `size` bytes. */
export function parseRange(header: string | null, size: number): RangeRequest {
  const match = header ? SINGLE_RANGE.exec(header.trim()) : null;
  if (!match) return { kind: 'whole' };
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return { kind: 'whole' };
  if (first === '') {
    // `bytes=-n`: the last n bytes.
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', range: { start: Math.max(0, size - suffix), end: size - 1 } };
  }
  const start = Number(first);
  // `bytes=5-1` is malformed (ignored); `bytes=<size>-` is well-formed but outside the file.
  if (last !== '' && Number(last) < start) return { kind: 'whole' };
  if (start >= size) return { kind: 'unsatisfiable' };
  const end = last === '' ? size - 1 : Number(last);
  return { kind: 'partial', range: { start, end: Math.min(end, size - 1) } };
}

/** Whether a conditional header (If-None-Match, If-Range) names this ETag; `*` names any. */
export function etagMatches(header: string | null, etag: string): boolean {
  if (!header) return false;
  const weakless = (tag: string) => tag.trim().replace(/^W\//, '');
  return header.split(',').some((tag) => tag.trim() === '*' || weakless(tag) === weakless(etag));
}
