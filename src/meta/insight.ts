/**
 * What insight (src/insight/) keeps in the shared metadata store: usage events (every push, pull,
 * delete, login, token issue and policy decision) and their rollups per hour and per day.
 *
 * Events are written in batches (src/insight/events.ts). The transaction that inserts events also
 * adds them to the rollups: a rollup always agrees with the events written, and replicas add up
 * (each adds only its own events). Writing is idempotent by id: an event already stored is
 * skipped and not counted again, so a batch retried after an unknown outcome counts once. Rollups
 * outlive the events they were made from: pruning events leaves them alone.
 *
 * Text fields are empty strings, never null, when absent.
 */

/** budget: a namespace's or team's cost crossed a threshold of its budget (src/insight/cost/budgets.ts) */
export type EventType = 'push' | 'pull' | 'delete' | 'login' | 'token' | 'decision' | 'budget';
export type EventObject = 'manifest' | 'blob' | 'tag' | '';
export type EventResult = 'ok' | 'denied' | 'error' | 'aborted';

export interface UsageEvent {
  /** time-sortable: eventId(at) */
  id: string;
  /** ms since the epoch, when the request began */
  at: number;
  type: EventType;
  object: EventObject;
  namespace: string;
  repository: string;
  digest: string;
  tag: string;
  mediaType: string;
  /** the identity's name; 'anonymous' when none */
  actor: string;
  /** 'user' | 'robot' | 'anonymous' | 'token' | … */
  actorKind: string;
  /** the personal or robot token that authenticated the request, or '' */
  tokenId: string;
  /** bytes actually sent (pulls) or received (pushes) */
  bytes: number;
  userAgent: string;
  /** the client's address */
  source: string;
  durationMicros: number;
  /** the HTTP status, 0 when there was none */
  status: number;
  result: EventResult;
  /** small facts of the kind (a decision's policy and message, a token's scopes); {} when none */
  detail: Record<string, unknown>;
}

/** A position in (at, id) order: the last event read. */
export interface EventCursor {
  at: number;
  id: string;
}

export interface EventFilter {
  types?: EventType[];
  /** one namespace, or any of several (an empty list matches nothing) */
  namespaces?: string[];
  repository?: string;
  /** at >= since */
  since?: number;
  /** at < until */
  until?: number;
}

export type RollupPeriod = 'hour' | 'day';

export interface Rollup {
  period: RollupPeriod;
  /** ms since the epoch, the start of the hour or (UTC) day */
  start: number;
  namespace: string;
  repository: string;
  type: EventType;
  object: EventObject;
  count: number;
  bytes: number;
}

export interface RollupFilter {
  period: RollupPeriod;
  namespaces?: string[];
  repository?: string;
  /** start >= since */
  since?: number;
  /** start < until */
  until?: number;
  /** at most this many rows (the first in order) */
  limit?: number;
}

export interface InsightStore {
  /**
   * Inserts the events and adds them to the hour and day rollups, in transactions that do both
   * (on SQLite, of at most 250 events, from a thread of its own: src/meta/kysely/sqlite-events.ts;
   * on PostgreSQL, one). Events whose id is stored already are skipped, and counted once.
   */
  recordEvents(events: UsageEvent[]): Promise<void>;
  /**
   * Events after `cursor` (from the oldest without one) in (at, id) order, at most `limit`: what
   * webhooks and exports read. Another replica's events are committed up to a flush interval
   * (more when its database is behind) after their `at`: a reader that must see everything should
   * read with `until` a margin behind now, and keep its cursor.
   */
  eventsAfter(cursor: EventCursor | undefined, limit: number, filter?: EventFilter): Promise<UsageEvent[]>;
  /** Newest first; `before` is the `next` of the previous page. */
  listEvents(filter: EventFilter, page: { limit: number; before?: EventCursor }): Promise<{ events: UsageEvent[]; next?: EventCursor }>;
  /** Rollups in (start, namespace, repository, type, object) order. */
  rollups(filter: RollupFilter): Promise<Rollup[]>;
  /** Deletes up to `limit` events older than `before` (oldest first); how many. */
  pruneEvents(before: number, limit: number): Promise<number>;
  /** Deletes the rollups of the period that start before `before` (pruned hourly: an hour's rows at a time); how many. */
  pruneRollups(period: RollupPeriod, before: number): Promise<number>;
}

let sequence = 0;
const replica = Math.floor(Math.random() * 0x1_0000_0000)
  .toString(16)
  .padStart(8, '0');

/**
 * A new event id: 13-digit zero-padded ms, '-', this process's random tag and a counter, so ids
 * sort as (at, id) and, within one process, in the order they were made.
 */
export function eventId(at: number): string {
  sequence = (sequence + 1) % 0x1_0000_0000;
  return `${String(at).padStart(13, '0')}-${replica}${sequence.toString(16).padStart(8, '0')}`;
}

export const hourMs = 3_600_000;
export const dayMs = 86_400_000;

/** The start of the hour, or of the UTC day, that `at` falls in. */
export const periodStart = (period: RollupPeriod, at: number): number => at - (at % (period === 'hour' ? hourMs : dayMs));

/** An event as JSON, for the API's event lists and the webhooks' CloudEvent data: its time as ISO 8601. */
export function eventJson(e: UsageEvent) {
  return {
    id: e.id,
    time: new Date(e.at).toISOString(),
    type: e.type,
    object: e.object,
    namespace: e.namespace,
    repository: e.repository,
    digest: e.digest,
    tag: e.tag,
    mediaType: e.mediaType,
    actor: e.actor,
    actorKind: e.actorKind,
    tokenId: e.tokenId,
    bytes: e.bytes,
    userAgent: e.userAgent,
    source: e.source,
    durationMicros: e.durationMicros,
    status: e.status,
    result: e.result,
    detail: e.detail,
  };
}
