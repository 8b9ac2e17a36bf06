/**
 * An upload slower than the GC's grace period, step by step: the collection sweeps the blob's row
 * (and perhaps its bytes) while the upload is held at a chosen point by a blob store that waits
 * there. The upload is acknowledged only with its bytes in place; when it is refused, it takes
 * nothing with it, not even the link a retry of the same upload made in the meantime.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { BlobStore } from '../src/storage/blobstore.ts';
import { MemoryBlobStore } from '../src/storage/memory/index.ts';
import { collect } from './helpers/gc.ts';
import { putManifest, request, sha256, types } from './helpers/http.ts';
import { startInjected, type InProcessServer } from './helpers/server.ts';

const data = 'a layer uploaded slowly';
const digest = sha256(data);
const key = `blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`;

interface Gate {
  /** resolves once the upload is held here */
  reached: Promise<void>;
  release(): void;
}

/** A point where the first call for the blob's key waits until released. */
function gate(): Gate & { hold(): Promise<void> } {
  let reached!: () => void;
  let release!: () => void;
  const r = new Promise<void>((resolve) => (reached = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  let used = false;
  return {
    reached: r,
    release,
    hold: async () => {
      if (used) return;
      used = true;
      reached();
      await released;
    },
  };
}

/** The memory store, holding the first write of the blob before or after it, and its first stat. */
function heldStore(at: { beforeWrite?: ReturnType<typeof gate>; afterWrite?: ReturnType<typeof gate>; stat?: ReturnType<typeof gate> }): BlobStore {
  const inner = new MemoryBlobStore();
  return {
    stat: async (k) => {
      const r = await inner.stat(k);
      if (k === key) await at.stat?.hold();
      return r;
    },
    write: async (k, body, options) => {
      if (k === key) await at.beforeWrite?.hold();
      const r = await inner.write(k, body, options);
      if (k === key) await at.afterWrite?.hold();
      return r;
    },
    read: (k, range) => inner.read(k, range),
    openCopy: (k, range) => inner.openCopy(k, range),
    move: (from, to) => inner.move(from, to),
    delete: (k) => inner.delete(k),
    list: (prefix) => inner.list(prefix),
    ping: () => inner.ping(),
  };
}

let server: InProcessServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function start(blobs: BlobStore): Promise<InProcessServer> {
  server = await startInjected({
    parts: { blobs },
    config: { lifecycle: { gc: { graceSeconds: 0, intervalSeconds: 0, batchSize: 10, heartbeatSeconds: 1 } } },
  });
  return server;
}

const upload = (base: string) => request(base, `/v2/gc/app/blobs/uploads/?digest=${digest}`, { method: 'POST', body: data });
const served = async (base: string) => (await request(base, `/v2/gc/app/blobs/${digest}`)).status;

/** A collection, once what the upload touched is older than the cutoff (grace 0). */
async function sweep(base: string): Promise<void> {
  await new Promise((r) => setTimeout(r, 5));
  expect((await collect(base, false)).done.blobs).toBe(1);
}

describe('an upload the GC overtakes', () => {
  it('is acknowledged when its bytes came after the sweep', async () => {
    const beforeWrite = gate();
    const s = await start(heldStore({ beforeWrite }));
    const slow = upload(s.url);
    await beforeWrite.reached;
    await sweep(s.url); // the row goes; there were no bytes yet
    beforeWrite.release();
    expect((await slow).status).toBe(201);
    expect(await served(s.url)).toBe(200);
  });

  it('is refused when the sweep took its bytes, and leaves nothing linked', async () => {
    const afterWrite = gate();
    const s = await start(heldStore({ afterWrite }));
    const slow = upload(s.url);
    await afterWrite.reached;
    await sweep(s.url); // the row and the bytes just written go
    afterWrite.release();
    const refused = await slow;
    expect(refused.status).toBe(400);
    expect(refused.json<{ errors: { code: string }[] }>().errors[0]?.code).toBe('BLOB_UPLOAD_INVALID');
    expect(await served(s.url)).toBe(404);
    expect((await upload(s.url)).status).toBe(201);
    expect(await served(s.url)).toBe(200);
  });

  it('when refused, keeps the link a retry made meanwhile, and the manifest that names it', async () => {
    const [afterWrite, stat] = [gate(), gate()];
    const s = await start(heldStore({ afterWrite, stat }));
    const slow = upload(s.url);
    await afterWrite.reached;
    await sweep(s.url);
    afterWrite.release();
    await stat.reached; // it found its row swept, and looks for its bytes: gone
    // the client's retry, acknowledged, and a manifest naming the blob
    expect((await upload(s.url)).status).toBe(201);
    const config = '{}';
    expect((await request(s.url, `/v2/gc/app/blobs/uploads/?digest=${sha256(config)}`, { method: 'POST', body: config })).status).toBe(201);
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: types.manifest,
      config: { mediaType: types.config, digest: sha256(config), size: config.length },
      layers: [{ mediaType: types.layer, digest, size: data.length }],
    });
    expect((await putManifest(s.url, 'gc/app', 'v1', body)).status).toBe(201);
    stat.release();
    expect((await slow).status).toBe(400);
    expect(await served(s.url), 'the blob of an acknowledged manifest').toBe(200);
  });
});
