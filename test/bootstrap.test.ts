/**
 * buildApp() no longer creates the first admin: bootstrap(app) does, once the caller has bound
 * its port (`custody serve`; startInProcess in tests). Until then the app holds requests back, so
 * nobody is told "invalid password" by a server whose admin is a moment away.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { validate } from '../src/config/load.ts';
import { openMetaStore } from '../src/meta/open.ts';
import { bootstrap, buildApp } from '../src/server/app.ts';
import { request, testAdmin } from './helpers/http.ts';
import { tempDir } from './helpers/server.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('bootstrap(app)', () => {
  it('creates the admin after buildApp; a request that came first waits for it', async () => {
    const dataDir = await tempDir();
    dirs.push(dataDir);
    const meta = await openMetaStore(path.join(dataDir, 'custody.db'));
    const config = validate({ dataDir, log: { level: 'warn' }, storage: { fsync: false }, auth: { adminPassword: testAdmin.password } });
    const app = await buildApp(config, { meta });
    try {
      await app.listen({ host: '127.0.0.1', port: 0 });
      const address = app.server.address();
      if (!address || typeof address === 'string') throw new Error('no address');
      expect(await meta.accounts.countUsers()).toBe(0);

      const arrived = new Promise<void>((resolve) => app.server.once('request', () => resolve()));
      let answered = false;
      const reply = request(`http://127.0.0.1:${address.port}`, '/v2/').then((r) => ((answered = true), r));
      await arrived;
      // The request is in the server, the admin does not exist yet, and it has no answer.
      expect(await meta.accounts.countUsers()).toBe(0);
      expect(answered).toBe(false);

      await bootstrap(app);
      expect(await meta.accounts.countUsers()).toBe(1);
      // Answered as the admin that now exists.
      expect((await reply).status).toBe(200);
    } finally {
      await app.close();
    }
  });
});
