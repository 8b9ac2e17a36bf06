import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdtemp, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { FsBlobStore } from '../src/storage/fs/index.ts';
import { MemoryBlobStore } from '../src/storage/memory/index.ts';
import { blobStoreSuite } from './suites/storage.ts';

blobStoreSuite('memory', async () => new MemoryBlobStore());
blobStoreSuite('fs', async () => FsBlobStore.open({ root: await mkdtemp(path.join(tmpdir(), 'custody-fs-')) }));

/** Resolves once `check` answers true, looking again on every turn of the event loop. */
async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, 5));
}

describe('fs BlobStore shared by several servers', () => {
  it('opening it again keeps writes in progress and removes only temporary files older than the expiry', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'custody-fs-shared-'));
    const tmp = path.join(root, '_tmp');
    const first = await FsBlobStore.open({ root, fsync: true });
    const body = new PassThrough();
    const data = randomBytes(256 * 1024);
    const writing = first.write('blobs/shared/one', body);
    body.write(data.subarray(0, 1000));
    await until(async () => (await readdir(tmp)).length === 1 && (await stat(path.join(tmp, (await readdir(tmp))[0] as string))).size === 1000);

    // Leftovers of a crash: one older than the expiry, one younger (it may still be someone's).
    const hour = 3600;
    await writeFile(path.join(tmp, 'stale'), 'left by a crash two hours ago');
    await utimes(path.join(tmp, 'stale'), Date.now() / 1000 - 2 * hour, Date.now() / 1000 - 2 * hour);
    await writeFile(path.join(tmp, 'recent'), 'left half an hour ago');
    await utimes(path.join(tmp, 'recent'), Date.now() / 1000 - hour / 2, Date.now() / 1000 - hour / 2);

    const second = await FsBlobStore.open({ root, fsync: true, staleTempAfterMs: hour * 1000 });
    const left = await readdir(tmp);
    expect(left).not.toContain('stale');
    expect(left).toContain('recent');
    expect(left).toHaveLength(2); // and the write in progress

    body.end(data.subarray(1000));
    expect(await writing).toEqual({ size: data.length });
    expect((await buffer(await second.read('blobs/shared/one'))).equals(data)).toBe(true);
  });
});

describe('fs BlobStore directories', () => {
  it('removes a directory its last delete left empty, and writes into it again afterwards', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'custody-fs-dirs-'));
    const store = await FsBlobStore.open({ root });
    const put = (key: string, body: string) => store.write(key, Readable.from([Buffer.from(body)]), { staging: true });
    await put('uploads/one/0-a', 'first part');
    await put('uploads/one/10-b', 'second part');
    await store.delete('uploads/one/0-a');
    expect(await readdir(path.join(root, 'uploads/one'))).toEqual(['10-b']);
    await store.deleteMany(['uploads/one/10-b']);
    expect(await readdir(path.join(root, 'uploads'))).toEqual([]);
    // the store remembered the directory as made: a new write there must make it again
    await put('uploads/one/0-c', 'again');
    expect((await buffer(await store.read('uploads/one/0-c'))).toString()).toBe('again');
    // never the root or _tmp
    await store.delete('uploads/one/0-c');
    await store.delete('top-level');
    expect((await readdir(root)).sort()).toEqual(['_tmp', 'uploads']);
  });
});

describe('fs BlobStore durability', () => {
  /** A store whose directory fsyncs are recorded: which directory, what it held when the fsync started, and when it ended. */
  async function recorded() {
    const root = await mkdtemp(path.join(tmpdir(), 'custody-fs-sync-'));
    const log: { event: 'sync' | 'synced' | 'resolved'; dir?: string; entries?: string[]; what?: string }[] = [];
    const store = await FsBlobStore.open({
      root,
      fsync: true,
      syncDirectory: async (dir) => {
        log.push({ event: 'sync', dir: path.relative(root, dir), entries: readdirSync(dir) });
        await new Promise((r) => setImmediate(r));
        log.push({ event: 'synced', dir: path.relative(root, dir) });
      },
    });
    log.length = 0;
    return { root, store, log };
  }

  /** The index of an fsync of `dir` that started once `entry` was in it and ended before `before`. */
  function syncedWith(log: Awaited<ReturnType<typeof recorded>>['log'], dir: string, entry: string, before: number): number {
    return log.findIndex(
      (e, i) =>
        i < before &&
        e.event === 'sync' &&
        e.dir === dir &&
        e.entries?.includes(entry) &&
        log.slice(i + 1, before).some((f) => f.event === 'synced' && f.dir === dir),
    );
  }

  it('resolves a write only after an fsync of its directory that started after the rename, and of the parent of each directory it made', async () => {
    const { store, log } = await recorded();
    await store.write('blobs/sha256/ab/abcd', Readable.from([Buffer.from('bytes')]));
    log.push({ event: 'resolved', what: 'write' });
    const resolved = log.length - 1;
    expect(syncedWith(log, 'blobs/sha256/ab', 'abcd', resolved), JSON.stringify(log)).toBeGreaterThanOrEqual(0);
    expect(syncedWith(log, 'blobs/sha256', 'ab', resolved)).toBeGreaterThanOrEqual(0);
    expect(syncedWith(log, 'blobs', 'sha256', resolved)).toBeGreaterThanOrEqual(0);
    expect(syncedWith(log, '', 'blobs', resolved)).toBeGreaterThanOrEqual(0);

    // A second write into the same directory syncs it again, and none of the parents.
    log.length = 0;
    await store.write('blobs/sha256/ab/abef', Readable.from([Buffer.from('more bytes')]));
    log.push({ event: 'resolved', what: 'write' });
    expect(syncedWith(log, 'blobs/sha256/ab', 'abef', log.length - 1)).toBeGreaterThanOrEqual(0);
    expect(log.filter((e) => e.event === 'sync').map((e) => e.dir)).toEqual(['blobs/sha256/ab']);
  });

  it('resolves a move only after an fsync of the directory it moved into', async () => {
    const { store, log } = await recorded();
    await store.write('uploads/u1/0-aa', Readable.from([Buffer.from('part')]));
    log.length = 0;
    await store.move('uploads/u1/0-aa', 'blobs/sha256/cd/cdef');
    log.push({ event: 'resolved', what: 'move' });
    expect(syncedWith(log, 'blobs/sha256/cd', 'cdef', log.length - 1), JSON.stringify(log)).toBeGreaterThanOrEqual(0);
  });

  it('covers concurrent writes into one directory with fewer fsyncs than writes, none acknowledged before an fsync that saw it', async () => {
    const { store, log } = await recorded();
    await store.write('blobs/sha256/ef/ef00', Readable.from([Buffer.from('first')]));
    log.length = 0;
    const n = 20;
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        await store.write(`blobs/sha256/ef/ef${i + 10}`, Readable.from([randomBytes(1000)]));
        log.push({ event: 'resolved', what: `ef${i + 10}` });
      }),
    );
    const syncs = log.filter((e) => e.event === 'sync' && e.dir === 'blobs/sha256/ef').length;
    expect(syncs).toBeLessThan(n);
    for (let i = 0; i < n; i++) {
      const resolved = log.findIndex((e) => e.event === 'resolved' && e.what === `ef${i + 10}`);
      expect(syncedWith(log, 'blobs/sha256/ef', `ef${i + 10}`, resolved), `ef${i + 10}`).toBeGreaterThanOrEqual(0);
    }
  });

  it('syncs no directory for a staging write (an upload part), and makes its name durable when it is moved into place', async () => {
    const { store, log } = await recorded();
    await store.write('uploads/u1/0-aa', Readable.from([Buffer.from('part')]), { staging: true });
    expect(log.filter((e) => e.event === 'sync')).toEqual([]);
    await store.move('uploads/u1/0-aa', 'blobs/sha256/cd/cdef');
    log.push({ event: 'resolved', what: 'move' });
    const resolved = log.length - 1;
    expect(syncedWith(log, 'blobs/sha256/cd', 'cdef', resolved), JSON.stringify(log)).toBeGreaterThanOrEqual(0);
    expect(syncedWith(log, 'blobs/sha256', 'cd', resolved)).toBeGreaterThanOrEqual(0);
    expect(log.some((e) => e.event === 'sync' && (e.dir ?? '').startsWith('uploads'))).toBe(false);
  });

  it('syncs no directory with fsync off', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'custody-fs-nosync-'));
    let syncs = 0;
    const store = await FsBlobStore.open({ root, fsync: false, syncDirectory: async () => void syncs++ });
    await store.write('blobs/sha256/ab/abcd', Readable.from([Buffer.from('bytes')]));
    expect(syncs).toBe(0);
  });
});
