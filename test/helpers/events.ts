/** Usage events in tests: one made to order, and reading a listening server's as a client test does (GET /api/v1/events, as the admin). */
import { expect } from 'vitest';
import { eventId, type UsageEvent } from '../../src/meta/insight.ts';
import { request } from './http.ts';

/** A successful blob pull by alice in team/app at `at`, with `extra` over it. */
export function usageEvent(at: number, extra: Partial<UsageEvent> = {}): UsageEvent {
  return {
    id: eventId(at),
    at,
    type: 'pull',
    object: 'blob',
    namespace: 'team',
    repository: 'team/app',
    digest: `sha256:${'c'.repeat(64)}`,
    tag: '',
    mediaType: '',
    actor: 'alice',
    actorKind: 'user',
    tokenId: '',
    bytes: 1000,
    userAgent: 'test',
    source: '10.1.2.3',
    durationMicros: 1,
    status: 200,
    result: 'ok',
    detail: {},
    ...extra,
  };
}

/** An event as GET /api/v1/events answers it. */
export interface EventView {
  type: string;
  object: string;
  repository: string;
  digest: string;
  tag: string;
  bytes: number;
  actor: string;
  actorKind: string;
  userAgent: string;
  result: string;
  status: number;
  detail: Record<string, unknown>;
}

/**
 * The repository's events of one type, oldest first, once `count` of them succeeded and sent or
 * stored bytes, or after 30 s (the whole suite may run beside the test). Counting only those: the
 * HEADs a client sends before it uploads are pulls that succeed with no bytes, and must not end
 * the wait before the GETs that follow.
 */
export async function eventsOnceSent(url: string, repository: string, type: string, count: number): Promise<EventView[]> {
  for (let i = 0; ; i++) {
    const r = await request(url, `/api/v1/events?repository=${repository}&type=${type}&limit=500`);
    expect(r.status).toBe(200);
    const found = r.json<{ events: EventView[] }>().events.reverse();
    if (found.filter((e) => e.result === 'ok' && e.bytes > 0).length >= count || i > 600) return found;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
