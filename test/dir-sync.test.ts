/**
 * Batched directory fsyncs (src/storage/fs/dir-sync.ts): fewer fsyncs than renames, and no caller
 * acknowledged before an fsync that started after its call has completed.
 */
import { describe, expect, it } from 'vitest';
import { DirSyncer } from '../src/storage/fs/dir-sync.ts';

/** A fake fsync whose calls are logged and end when the test says so (or after a few turns). */
function fakeFsync() {
  const log: string[] = [];
  const pending: { dir: string; end: (err?: Error) => void }[] = [];
  let n = 0;
  const fsync = (dir: string) =>
    new Promise<void>((resolve, reject) => {
      const id = n++;
      log.push(`start ${dir} ${id}`);
      pending.push({
        dir,
        end: (err) => {
          log.push(`end ${dir} ${id}`);
          if (err) reject(err);
          else resolve();
        },
      });
    });
  /** Ends the oldest fsync still running. */
  const endOne = (err?: Error) => {
    const p = pending.shift();
    if (!p) throw new Error('no fsync is running');
    p.end(err);
  };
  return { log, pending, fsync, endOne, count: () => n };
}

const turn = () => new Promise((r) => setImmediate(r));

describe('DirSyncer', () => {
  it('covers N concurrent renames into one directory with fewer than N fsyncs, each caller only by an fsync started after its call', async () => {
    const fake = fakeFsync();
    const syncer = new DirSyncer(fake.fsync);
    const N = 50;
    const acked: Promise<void>[] = [];
    // Renames land one by one, on different turns, while fsyncs run and end.
    for (let i = 0; i < N; i++) {
      fake.log.push(`rename ${i}`);
      acked.push(syncer.sync('/d').then(() => void fake.log.push(`ack ${i}`)));
      if (i % 7 === 6 && fake.pending.length > 0) fake.endOne();
      await turn();
    }
    while (fake.pending.length > 0) {
      fake.endOne();
      await turn();
    }
    await Promise.all(acked);

    expect(fake.count()).toBeLessThan(N);
    expect(fake.count()).toBeGreaterThan(1);
    for (let i = 0; i < N; i++) {
      const renamed = fake.log.indexOf(`rename ${i}`);
      const ack = fake.log.indexOf(`ack ${i}`);
      // An fsync that started after the rename and ended before the acknowledgement.
      const covering = fake.log.some((e, at) => {
        if (!e.startsWith('start ') || at < renamed) return false;
        const end = fake.log.indexOf(`end ${e.slice('start '.length)}`);
        return end > at && end < ack;
      });
      expect(covering, `rename ${i}: ${fake.log.join(', ')}`).toBe(true);
    }
  });

  it('never answers a caller with the fsync that was already running when it asked', async () => {
    const fake = fakeFsync();
    const syncer = new DirSyncer(fake.fsync);
    let first = false;
    let second = false;
    const a = syncer.sync('/d').then(() => void (first = true));
    const b = syncer.sync('/d').then(() => void (second = true));
    const c = syncer.sync('/d');
    expect(fake.count()).toBe(1);
    fake.endOne();
    await a;
    expect(first).toBe(true);
    expect(second).toBe(false);
    // b and c share the second fsync, started only once the first had ended.
    expect(fake.count()).toBe(2);
    fake.endOne();
    await Promise.all([b, c]);
    expect(second).toBe(true);
    expect(fake.count()).toBe(2);
  });

  it('syncs different directories independently', async () => {
    const fake = fakeFsync();
    const syncer = new DirSyncer(fake.fsync);
    const both = Promise.all([syncer.sync('/a'), syncer.sync('/b')]);
    expect(fake.pending.map((p) => p.dir)).toEqual(['/a', '/b']);
    fake.endOne();
    fake.endOne();
    await both;
  });

  it('rejects the callers of an fsync that failed, and starts afresh for the next ones', async () => {
    const fake = fakeFsync();
    const syncer = new DirSyncer(fake.fsync);
    const failed = syncer.sync('/d');
    const next = syncer.sync('/d');
    fake.endOne(new Error('EIO'));
    await expect(failed).rejects.toThrow('EIO');
    fake.endOne();
    await expect(next).resolves.toBeUndefined();
    const later = syncer.sync('/d');
    expect(fake.count()).toBe(3);
    fake.endOne();
    await expect(later).resolves.toBeUndefined();
  });

  it('rejects, and does not stick, when the fsync throws before returning a promise', async () => {
    let calls = 0;
    const syncer = new DirSyncer((dir) => {
      if (calls++ === 0) throw new Error(`cannot open ${dir}`);
      return Promise.resolve();
    });
    await expect(syncer.sync('/d')).rejects.toThrow('cannot open /d');
    await expect(syncer.sync('/d')).resolves.toBeUndefined();
  });
});
