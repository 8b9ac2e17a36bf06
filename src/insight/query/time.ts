/**
 * Times in the query language: every stored time is milliseconds since the epoch, so `now()`,
 * `interval '7 days'` and `timestamp '2025-01-31'` become numbers here, before any SQL is made.
 */
import { QueryError, type Position } from './lexer.ts';

const units: Record<string, number> = {
  ms: 1,
  millisecond: 1,
  milliseconds: 1,
  s: 1000,
  sec: 1000,
  second: 1000,
  seconds: 1000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  days: 86_400_000,
  w: 604_800_000,
  week: 604_800_000,
  weeks: 604_800_000,
};

/** `'7 days'`, `'1 hour 30 minutes'`, `'90s'`: milliseconds. Months and years have no fixed length and are refused. */
export function parseInterval(text: string, at: Position): number {
  const parts = [...text.matchAll(/\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]+)\s*/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text)
    throw new QueryError(at, `'${text}' is not an interval: use a number and a unit, like '7 days' or '1 hour 30 minutes'`);
  let ms = 0;
  for (const [, n, unit] of parts) {
    const size = units[(unit as string).toLowerCase()];
    if (size === undefined)
      throw new QueryError(
        at,
        /^(months?|mons?|years?|y)$/i.test(unit as string)
          ? `months and years have no fixed length: use days or weeks`
          : `"${unit}" is not a unit: use ms, seconds, minutes, hours, days or weeks`,
      );
    ms += Number(n) * size;
  }
  return Math.round(ms);
}

const isoTime = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i;

/** An ISO 8601 date or time; without a zone, UTC. Milliseconds since the epoch. */
export function parseTimestamp(text: string, at: Position): number {
  const m = isoTime.exec(text.trim());
  if (!m) throw new QueryError(at, `'${text}' is not a time: use ISO 8601, like '2025-01-31' or '2025-01-31T12:00:00Z'`);
  const [, y, mo, d, h = '00', mi = '00', s = '00', frac = '', zone] = m;
  const iso = `${y}-${mo}-${d}T${h}:${mi}:${s}${frac.slice(0, 4)}${zone ? (zone.toUpperCase() === 'Z' ? 'Z' : zone.replace(/^([+-]\d{2})(\d{2})$/, '$1:$2')) : 'Z'}`;
  const ms = Date.parse(iso);
  // Date.parse rolls 2025-02-30 over to March: a date that does not come back as written is not one
  if (Number.isNaN(ms) || (zone === undefined && new Date(ms).toISOString().slice(0, 10) !== `${y}-${mo}-${d}`))
    throw new QueryError(at, `'${text}' is not a valid time`);
  return ms;
}
