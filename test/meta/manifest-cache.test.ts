/** The manifest cache alone: what it keeps, what it forgets, and what it refuses to keep. */
import { describe, expect, it } from 'vitest';
import { ManifestCache } from '../../src/meta/manifest-cache.ts';
import type { ManifestRecord } from '../../src/meta/metastore.ts';

const record = (digest: string, size = 10): ManifestRecord => ({
  repo: 'team/app',
  digest,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  content: new Uint8Array(size),
});

/** A loader that counts its calls and answers what `answer` holds at the time. */
function loader(answer: { current: ManifestRecord | undefined }) {
  const calls = { n: 0 };
  const load = async () => {
    calls.n++;
    return answer.current;
  };
  return { calls, load };
}

function live(options: Partial<ConstructorParameters<typeof ManifestCache>[0]> = {}): ManifestCache {
  const cache = new ManifestCache({ maxBytes: 1000, ...options });
  cache.resume();
  return cache;
}

describe('manifest cache', () => {
  it('answers a second read from memory, and reads again after the repository changed', async () => {
    const cache = live();
    const answer = { current: record('sha256:a') };
    const { calls, load } = loader(answer);
    expect(await cache.read('team/app', 'v1', load)).toBe(answer.current);
    expect(await cache.read('team/app', 'v1', load)).toBe(answer.current);
    expect(calls.n).toBe(1);
    answer.current = record('sha256:b');
    cache.invalidate('team/app');
    expect((await cache.read('team/app', 'v1', load))?.digest).toBe('sha256:b');
    expect(calls.n).toBe(2);
  });

  it('keeps no misses: a tag that appears is found at once', async () => {
    const cache = live();
    const answer: { current: ManifestRecord | undefined } = { current: undefined };
    const { calls, load } = loader(answer);
    expect(await cache.read('team/app', 'v1', load)).toBeUndefined();
    answer.current = record('sha256:a');
    expect((await cache.read('team/app', 'v1', load))?.digest).toBe('sha256:a');
    expect(calls.n).toBe(2);
  });

  it('does not keep what a read found when the repository changed while it ran', async () => {
    const cache = live();
    let release!: () => void;
    const slow = () => new Promise<ManifestRecord>((resolve) => (release = () => resolve(record('sha256:old'))));
    const reading = cache.read('team/app', 'v1', slow);
    cache.invalidate('team/app'); // the change lands while the read is under way
    release();
    expect((await reading)?.digest).toBe('sha256:old');
    expect(cache.size.bytes).toBe(0);
    const { calls, load } = loader({ current: record('sha256:new') });
    expect((await cache.read('team/app', 'v1', load))?.digest).toBe('sha256:new');
    expect(calls.n).toBe(1);
  });

  it('does not keep what a read found when the feed went down and came back while it ran', async () => {
    const cache = live();
    let release!: () => void;
    const slow = () => new Promise<ManifestRecord>((resolve) => (release = () => resolve(record('sha256:old'))));
    const reading = cache.read('team/app', 'v1', slow);
    cache.suspend();
    cache.resume();
    release();
    await reading;
    expect(cache.size.bytes).toBe(0);
    const { calls, load } = loader({ current: record('sha256:new') });
    expect((await cache.read('team/app', 'v1', load))?.digest).toBe('sha256:new');
    expect(calls.n).toBe(1);
  });

  it('serves nothing from memory while suspended, and starts empty when resumed', async () => {
    const cache = live();
    const { calls, load } = loader({ current: record('sha256:a') });
    await cache.read('team/app', 'v1', load);
    cache.suspend();
    await cache.read('team/app', 'v1', load);
    await cache.read('team/app', 'v1', load);
    expect(calls.n).toBe(3);
    cache.resume();
    await cache.read('team/app', 'v1', load);
    await cache.read('team/app', 'v1', load);
    expect(calls.n).toBe(4);
  });

  it('is suspended until first resumed', async () => {
    const cache = new ManifestCache({ maxBytes: 1000 });
    const { calls, load } = loader({ current: record('sha256:a') });
    await cache.read('team/app', 'v1', load);
    await cache.read('team/app', 'v1', load);
    expect(calls.n).toBe(2);
  });

  it('reads again once an entry is older than its time to live', async () => {
    let now = 0;
    const cache = live({ ttlMs: 1000, now: () => now });
    const { calls, load } = loader({ current: record('sha256:a') });
    await cache.read('team/app', 'v1', load);
    now = 999;
    await cache.read('team/app', 'v1', load);
    now = 1000;
    await cache.read('team/app', 'v1', load);
    expect(calls.n).toBe(2);
  });

  it('stays within its bytes, dropping the oldest repositories first', async () => {
    const cache = live({ maxBytes: 1000 });
    for (let i = 0; i < 20; i++) await cache.read(`team/app${i}`, 'v1', async () => record(`sha256:${i}`, 100));
    expect(cache.size.bytes).toBeLessThanOrEqual(1000);
    const { calls, load } = loader({ current: record('sha256:x', 100) });
    await cache.read('team/app19', 'v1', load); // the newest is still there
    await cache.read('team/app0', 'v1', load); // the oldest is not
    expect(calls.n).toBe(1);
  });

  it('stays within its bytes when one repository alone would pass them', async () => {
    const cache = live({ maxBytes: 1000 });
    for (let i = 0; i < 30; i++) await cache.read('team/app', `v${i}`, async () => record(`sha256:${i}`, 100));
    expect(cache.size.bytes).toBeLessThanOrEqual(1000);
  });

  it('stays within its count of repositories, misses included', async () => {
    const cache = live({ maxRepositories: 5 });
    for (let i = 0; i < 50; i++) await cache.read(`team/missing${i}`, 'v1', async () => undefined);
    expect(cache.size.repositories).toBeLessThanOrEqual(5);
  });

  it('does not keep a manifest bigger than an eighth of its bytes', async () => {
    const cache = live({ maxBytes: 1000 });
    const { calls, load } = loader({ current: record('sha256:big', 200) });
    await cache.read('team/app', 'v1', load);
    await cache.read('team/app', 'v1', load);
    expect(calls.n).toBe(2);
  });
});
