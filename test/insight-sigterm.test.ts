/**
 * Nothing acknowledged is lost on SIGTERM: `custody serve` with events buffered for a minute
 * (insight.events.flushMs), pushes and pulls answered, then SIGTERM; every one of them is in the
 * database after the process exits, and none was before (so it is the close that wrote them).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openMetaStore } from '../src/meta/open.ts';
import { imageManifest, putManifest, request } from './helpers/http.ts';
import { startProcess, tempDir } from './helpers/server.ts';

const dirs: string[] = [];
afterAll(async () => {
  const { rm } = await import('node:fs/promises');
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('custody serve on SIGTERM', () => {
  it('writes the events of every request it answered before it exits', async () => {
    const dataDir = await tempDir();
    dirs.push(dataDir);
    const config = path.join(dataDir, 'custody.yaml');
    await writeFile(config, 'insight:\n  events:\n    flushMs: 60000\n    batchSize: 10000\n');
    const server = await startProcess({ dataDir, args: ['--config', config] });
    const repo = 'team/app';
    const { body, digest } = await imageManifest(server.url, repo);
    expect((await putManifest(server.url, repo, 'v1', body)).status).toBe(201);
    const pulls = 25;
    for (let i = 0; i < pulls; i++) expect((await request(server.url, `/v2/${repo}/manifests/v1`)).status).toBe(200);

    const db = path.join(dataDir, 'custody.db');
    const during = await openMetaStore(db);
    try {
      expect(await during.insight.eventsAfter(undefined, 1000, { repository: repo })).toEqual([]);
    } finally {
      await during.close();
    }

    expect(await server.kill('SIGTERM')).toBe(0);
    const after = await openMetaStore(db);
    try {
      const events = await after.insight.eventsAfter(undefined, 1000, { repository: repo });
      // the config blob, the layer, the manifest, and every pull
      expect(events.filter((e) => e.type === 'push')).toHaveLength(3);
      const pulled = events.filter((e) => e.type === 'pull');
      expect(pulled).toHaveLength(pulls);
      expect(pulled.every((e) => e.digest === digest && e.result === 'ok' && e.bytes === Buffer.byteLength(body))).toBe(true);
      const [hour] = await after.insight.rollups({ period: 'hour', repository: repo });
      expect(hour).toBeDefined();
      expect((await after.insight.rollups({ period: 'hour', repository: repo })).find((r) => r.type === 'pull')?.count).toBe(pulls);
    } finally {
      await after.close();
    }
  });
});
