import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { FsBlobStore } from '../src/storage/fs/index.ts';
import { MemoryBlobStore } from '../src/storage/memory/index.ts';
import { blobStoreSuite } from '../src/storage/testsuite.ts';

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
