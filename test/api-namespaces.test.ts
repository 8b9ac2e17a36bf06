/**
 * The namespaces GET /api/v1/namespaces derives from stored repositories: every first path
 * segment once, whatever the page size, including names that sort between `ns` and `ns/…`.
 */
import { describe, expect, it } from 'vitest';
import { pushedNamespaces } from '../src/api/namespaces.ts';
import type { MetaStore, Page } from '../src/meta/metastore.ts';

/** A catalog in byte order, paged as the stores page it (names after `last`, at most n). */
function catalog(names: string[]): { meta: MetaStore; pages: number } {
  const sorted = [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const state = { pages: 0 };
  const meta = {
    async listRepositories(page: Page): Promise<string[]> {
      state.pages += 1;
      return sorted.filter((n) => page.last === undefined || Buffer.compare(Buffer.from(n), Buffer.from(page.last)) > 0).slice(0, page.n);
    },
  } as unknown as MetaStore;
  return {
    meta,
    get pages() {
      return state.pages;
    },
  };
}

const names = ['ns', 'ns-x/a', 'ns.y/b', 'ns/a', 'ns/b/c', 'ns/z', 'ns0/c', 'ns_z/d', 'other', 'team/app', 'team/app/sub', 'team/web', 'zeta/z'];
const expected = ['ns', 'ns-x', 'ns.y', 'ns0', 'ns_z', 'other', 'team', 'zeta'];

describe('pushedNamespaces', () => {
  for (const pageSize of [1, 2, 3, 5, 1000]) {
    it(`finds every namespace once with pages of ${pageSize}`, async () => {
      const found = await pushedNamespaces(catalog(names).meta, pageSize);
      expect([...found].sort()).toEqual([...expected].sort());
    });
  }

  it('skips the rest of a namespace a page ends in, so one big namespace costs one page', async () => {
    const big = catalog([...Array.from({ length: 500 }, (_, i) => `big/repo-${String(i).padStart(3, '0')}`), 'small/app']);
    expect([...(await pushedNamespaces(big.meta, 100))]).toEqual(['big', 'small']);
    expect(big.pages).toBe(2);
  });

  it('an empty registry has none', async () => {
    expect((await pushedNamespaces(catalog([]).meta)).size).toBe(0);
  });
});
