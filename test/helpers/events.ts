/** Reading a listening server's usage events as a client test does: through GET /api/v1/events, as the admin. */
import { expect } from 'vitest';
import { request } from './http.ts';

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
