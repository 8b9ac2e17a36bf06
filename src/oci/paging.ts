/** `n` and `last` for tag lists and the catalog, and the `Link` header to the next page. */
import type { FastifyReply } from 'fastify';
import type { Page } from '../meta/metastore.ts';
import { OciError } from './errors.ts';

export const defaultPageSize = 1000;
export const maxPageSize = 10_000;

export function parsePage(query: URLSearchParams): Page {
  const n = query.get('n');
  const last = query.get('last') ?? undefined;
  if (n === null || n === '') return { n: defaultPageSize, last };
  if (!/^\d+$/.test(n) || Number(n) > maxPageSize) {
    throw new OciError('PAGINATION_NUMBER_INVALID', `n must be a whole number from 0 to ${maxPageSize}`);
  }
  return { n: Number(n), last };
}

/**
 * Sends one page. `fetch` is asked for one entry more than the page holds, to know whether a
 * next page exists without an extra query.
 */
export async function sendPage(
  reply: FastifyReply,
  path: string,
  page: Page,
  fetch: (page: Page) => Promise<string[]>,
  body: (items: string[]) => object,
): Promise<void> {
  const items = page.n === 0 ? [] : await fetch({ n: page.n + 1, last: page.last });
  if (items.length > page.n) {
    items.length = page.n;
    const lastItem = items[items.length - 1] ?? '';
    reply.header('link', `<${path}?n=${page.n}&last=${encodeURIComponent(lastItem)}>; rel="next"`);
  }
  await reply
    .code(200)
    .header('content-type', 'application/json')
    .send(JSON.stringify(body(items)));
}
