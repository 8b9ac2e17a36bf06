/**
 * The one BlobStore test suite. Every driver runs it (see test/storage.test.ts); a new driver is
 * done when it passes.
 */
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { BlobNotFoundError, type BlobStore } from '../../src/storage/blobstore.ts';

export function blobStoreSuite(name: string, open: () => Promise<BlobStore>): void {
  describe(`BlobStore: ${name}`, () => {
    it('writes, stats and reads an object', async () => {
      const store = await open();
      await store.write('blobs/a/one', Readable.from([Buffer.from('hello '), Buffer.from('world')]));
      expect(await store.stat('blobs/a/one')).toEqual({ size: 11 });
      expect(await text(await store.read('blobs/a/one'))).toBe('hello world');
      expect(await text(await store.read('blobs/a/one', { start: 6, end: 10 }))).toBe('world');
    });

    it('answers undefined and BlobNotFoundError for a missing object', async () => {
      const store = await open();
      expect(await store.stat('nothing/here')).toBeUndefined();
      await expect(store.read('nothing/here')).rejects.toBeInstanceOf(BlobNotFoundError);
    });

    it('leaves nothing when beforeCommit refuses, and keeps an earlier object', async () => {
      const store = await open();
      await store.write('k/refused', Readable.from([Buffer.from('old')]));
      const refuse = () => {
        throw new Error('digest mismatch');
      };
      await expect(store.write('k/refused', Readable.from([Buffer.from('new bytes')]), { beforeCommit: refuse })).rejects.toThrow('digest mismatch');
      await expect(store.write('k/never', Readable.from([Buffer.from('x')]), { beforeCommit: refuse })).rejects.toThrow();
      expect(await text(await store.read('k/refused'))).toBe('old');
      expect(await store.stat('k/never')).toBeUndefined();
    });

    it('leaves nothing when the source stream fails midway', async () => {
      const store = await open();
      async function* broken() {
        yield Buffer.from('partial');
        throw new Error('client went away');
      }
      await expect(store.write('k/broken', broken())).rejects.toThrow('client went away');
      expect(await store.stat('k/broken')).toBeUndefined();
    });

    it('passes the written size to beforeCommit', async () => {
      const store = await open();
      let seen = -1;
      await store.write('k/sized', Readable.from([Buffer.alloc(1000), Buffer.alloc(24)]), { beforeCommit: (size) => void (seen = size) });
      expect(seen).toBe(1024);
    });

    it('moves, deletes and lists objects', async () => {
      const store = await open();
      await store.write('up/1/0', Readable.from([Buffer.from('abc')]));
      await store.write('up/1/3', Readable.from([Buffer.from('def')]));
      await store.write('up/2/0', Readable.from([Buffer.from('ghi')]));
      const keys: string[] = [];
      for await (const key of store.list('up/1/')) keys.push(key);
      expect(keys.sort()).toEqual(['up/1/0', 'up/1/3']);
      await store.move('up/1/0', 'done/x');
      expect(await store.stat('up/1/0')).toBeUndefined();
      expect(await text(await store.read('done/x'))).toBe('abc');
      await store.delete('done/x');
      await store.delete('done/x');
      expect(await store.stat('done/x')).toBeUndefined();
      await expect(store.move('up/none', 'done/y')).rejects.toBeInstanceOf(BlobNotFoundError);
    });

    it('lists on when keys it has not yet given are deleted meanwhile (an upload ending beside the listing)', async () => {
      const store = await open();
      const keys = Array.from({ length: 4 }, (_, i) => `gone/1/${i}`);
      for (const key of keys) await store.write(key, Readable.from([Buffer.from(key)]));
      const listing = store.list('gone/1/')[Symbol.asyncIterator]();
      const first = await listing.next();
      expect(first.done).toBe(false);
      for (const key of keys) if (key !== first.value) await store.delete(key);
      const rest: string[] = [];
      for (let next = await listing.next(); next.done !== true; next = await listing.next()) rest.push(next.value);
      // each key either listed or not: the listing does not fail
      for (const key of rest) expect(keys).toContain(key);
    });

    it('deletes several objects at once, missing ones and an empty list being no error', async () => {
      const store = await open();
      const deleteMany = store.deleteMany?.bind(store);
      expect(deleteMany, 'every driver has deleteMany').toBeDefined();
      if (!deleteMany) return;
      const keys = Array.from({ length: 5 }, (_, i) => `many/${i % 2}/k${i}`);
      for (const key of keys) await store.write(key, Readable.from([Buffer.from(key)]));
      await deleteMany([keys[0]!, keys[2]!, 'many/never/written', keys[3]!, keys[0]!]);
      const left: string[] = [];
      for await (const key of store.list('many/')) left.push(key);
      expect(left.sort()).toEqual([keys[4], keys[1]].sort());
      expect(await text(await store.read(keys[4]!))).toBe(keys[4]);
      await expect(deleteMany([])).resolves.toBeUndefined();
      await expect(deleteMany([keys[1]!, '../escape'])).rejects.toThrow(/invalid blob store key/);
      expect(await store.stat(keys[1]!), 'a refused key fails the call before anything is deleted').toEqual({ size: keys[1]!.length });
    });

    it('writes an empty object', async () => {
      const store = await open();
      await store.write('k/empty', Readable.from([]));
      expect(await store.stat('k/empty')).toEqual({ size: 0 });
      expect(await text(await store.read('k/empty'))).toBe('');
    });

    it('refuses keys that could escape the store', async () => {
      const store = await open();
      for (const key of ['../etc/passwd', '/abs', 'a/../../b', 'a//b', '']) {
        await expect(store.stat(key)).rejects.toThrow(/invalid blob store key/);
      }
    });

    it('copies an object and ranges of it across buffer boundaries into a stream', async () => {
      const store = await open();
      const data = randomBytes(2.5 * 1024 * 1024);
      await store.write('blobs/big', Readable.from([data]));
      const copied = async (range?: { start: number; end: number }) => {
        const chunks: Buffer[] = [];
        const out = new Writable({ write: (c: Buffer, _e, done) => (chunks.push(Buffer.from(c)), done()) });
        await (
          await store.openCopy('blobs/big', range)
        )(out);
        return Buffer.concat(chunks);
      };
      expect((await copied()).equals(data)).toBe(true);
      const range = { start: 1024 * 1024 - 3, end: 2 * 1024 * 1024 + 5 };
      expect((await copied(range)).equals(data.subarray(range.start, range.end + 1))).toBe(true);
      await expect(store.openCopy('nothing/here')).rejects.toBeInstanceOf(BlobNotFoundError);
    });

    it('answers ping', async () => {
      const store = await open();
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}
