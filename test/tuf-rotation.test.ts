/**
 * TUF key rotation through /api/v1, as tuf-js sees it: a client pinned to an old root walks the
 * chain of roots and keeps verifying; a client given a tampered or foreign root fails.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, request, type Reply } from './helpers/http.ts';
import { createUser } from './helpers/accounts.ts';
import { pushImage, startTufServer, tufClient, type TufServer } from './helpers/tuf.ts';

let server: TufServer;
let rootV1: string;
let image: { digest: string; body: string };
const reader = basic('reader', 'reader-password');

interface RootJson {
  signatures: { keyid: string; sig: string }[];
  signed: { version: number; keys: Record<string, { keyval: { public: string } }>; roles: Record<string, { keyids: string[] }> };
}

interface Status {
  namespace: string;
  consistentSnapshot: boolean;
  targets: number;
  roles: Record<string, { version: number; expires: string; keyIds: string[]; signatures: string[] }>;
}

const api = (method: string, url: string, body?: unknown, authorization?: string): Promise<Reply> =>
  request(server.url, `/api/v1${url}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(authorization ? { authorization } : {}) },
  });

beforeAll(async () => {
  server = await startTufServer({}, { listen: false });
  await createUser(server.meta.accounts, 'reader', 'reader-password', { team: 'reader' });
  image = await pushImage(server.url, 'team/app', '1.0', 'rotating');
  server.signed.sign('team/app', '1.0');
  await pushImage(server.url, 'other/app', '1.0', 'other');
  rootV1 = (await request(server.url, '/tuf/team/root.json')).body.toString();
});
afterAll(() => server?.stop());

async function verifies(c: Awaited<ReturnType<typeof tufClient>>): Promise<void> {
  const updater = c.updater();
  await updater.refresh();
  const info = await updater.getTargetInfo('team/app:1.0');
  expect(info?.hashes.sha256).toBe(image.digest.slice('sha256:'.length));
  expect(await readFile(await updater.downloadTarget(info!), 'utf8')).toBe(image.body);
}

describe('rotation', () => {
  it('shows versions, key ids and expiries', async () => {
    const r = await api('GET', '/namespaces/team/tuf', undefined, reader);
    expect(r.status, r.body.toString()).toBe(200);
    const status = r.json<Status>();
    expect(status).toMatchObject({ namespace: 'team', consistentSnapshot: true, targets: 1 });
    expect(Object.keys(status.roles)).toEqual(['root', 'targets', 'snapshot', 'timestamp']);
    expect(status.roles.root).toMatchObject({ version: 1 });
    expect(new Set(Object.values(status.roles).map((r) => r.keyIds[0])).size).toBe(4);
    for (const role of Object.values(status.roles)) {
      expect(role.signatures).toEqual(role.keyIds);
      expect(Date.parse(role.expires)).toBeGreaterThan(Date.now());
    }
  });

  it('is for namespace admins, takes a known role, and is audited', async () => {
    expect((await api('POST', '/namespaces/team/tuf/rotate', { role: 'root' }, reader)).status).toBe(403);
    expect((await api('POST', '/namespaces/team/tuf/rotate', { role: 'root' }, 'Basic bm9ib2R5Og==')).status).toBe(401);
    const bad = await api('POST', '/namespaces/team/tuf/rotate', { role: 'delegated' });
    expect(bad.status).toBe(400);
    expect(bad.json<{ error: { message: string } }>().error.message).toMatch(/use root, targets, snapshot or timestamp/);
    expect((await api('POST', '/namespaces/team/tuf/rotate', { role: 'root', extra: 1 })).status).toBe(400);
    expect((await api('POST', '/namespaces/Nope/tuf/rotate', { role: 'root' })).status).toBe(400);
    expect((await api('POST', '/namespaces/nope/tuf/rotate', { role: 'root' })).status).toBe(404);
    expect((await api('GET', '/namespaces/nope/tuf')).status).toBe(404);
    expect((await api('GET', '/namespaces/team/tuf')).json<Status>().roles.root!.version).toBe(1);
  });

  it('rotates the root key: root 2 is signed by the old and the new key, and a pinned client follows', async () => {
    const client = await tufClient(server, 'team', { root: rootV1 });
    await verifies(client);
    const r = await api('POST', '/namespaces/team/tuf/rotate', { role: 'root' });
    expect(r.status, r.body.toString()).toBe(200);
    const old = JSON.parse(rootV1) as RootJson;
    const oldKey = old.signed.roles.root!.keyids[0]!;
    const status = r.json<Status>();
    expect(status.roles.root!.version).toBe(2);
    const newKey = status.roles.root!.keyIds[0]!;
    expect(newKey).not.toBe(oldKey);
    const v2 = (await request(server.url, '/tuf/team/2.root.json')).json<RootJson>();
    expect(v2.signatures.map((s) => s.keyid).sort()).toEqual([oldKey, newKey].sort());
    expect(v2.signed.keys[oldKey]).toBeUndefined();
    // The other roles kept their keys.
    for (const role of ['targets', 'snapshot', 'timestamp']) expect(v2.signed.roles[role]!.keyids).toEqual(old.signed.roles[role]!.keyids);

    await verifies(client);
    const trusted = JSON.parse(await readFile(path.join(client.metadataDir, 'root.json'), 'utf8')) as RootJson;
    expect(trusted.signed.version).toBe(2);

    const audit = await api('GET', '/audit?action=tuf.rotate');
    expect(audit.json<{ events: { target: string; detail: { role: string; keyId: string } }[] }>().events[0]).toMatchObject({
      target: 'team',
      detail: { role: 'root', keyId: newKey },
    });
  });

  it('rotates targets, snapshot and timestamp keys: what each signs is signed again, and clients keep verifying', async () => {
    const client = await tufClient(server, 'team');
    await verifies(client);
    for (const role of ['targets', 'snapshot', 'timestamp'] as const) {
      const before = (await api('GET', '/namespaces/team/tuf')).json<Status>();
      const r = await api('POST', '/namespaces/team/tuf/rotate', { role });
      expect(r.status, r.body.toString()).toBe(200);
      const after = r.json<Status>();
      expect(after.roles.root!.version).toBe(before.roles.root!.version + 1);
      expect(after.roles[role]!.keyIds).not.toEqual(before.roles[role]!.keyIds);
      expect(after.roles[role]!.signatures).toEqual(after.roles[role]!.keyIds);
      // The role and the ones that name it are new versions; the ones above it are not.
      const chain = ['targets', 'snapshot', 'timestamp'];
      for (const r2 of chain) {
        const changed = chain.indexOf(r2) >= chain.indexOf(role);
        expect(after.roles[r2]!.version, `${role} → ${r2}`).toBe(before.roles[r2]!.version + (changed ? 1 : 0));
      }
      await verifies(client);
    }
  });

  it('lets a client pinned to root 1 walk every rotation', async () => {
    const client = await tufClient(server, 'team', { root: rootV1 });
    await verifies(client);
    const trusted = JSON.parse(await readFile(path.join(client.metadataDir, 'root.json'), 'utf8')) as RootJson;
    expect(trusted.signed.version).toBe(5);
  });

  it('fails for a client whose root was tampered with or belongs to another namespace', async () => {
    const tampered = JSON.parse(rootV1) as RootJson;
    const ids = tampered.signed.roles;
    // Swap the timestamp and snapshot keys: the root's signature no longer holds.
    [ids.timestamp!.keyids, ids.snapshot!.keyids] = [ids.snapshot!.keyids, ids.timestamp!.keyids];
    const swapped = await tufClient(server, 'team', { root: JSON.stringify(tampered) });
    expect(() => swapped.updater()).toThrow(/signed by 0\/1 keys/);

    const keyed = JSON.parse(rootV1) as RootJson;
    const [first] = Object.keys(keyed.signed.keys);
    keyed.signed.keys[first!]!.keyval.public = 'ab'.repeat(32);
    const replaced = await tufClient(server, 'team', { root: JSON.stringify(keyed) });
    expect(() => replaced.updater()).toThrow(/signed by 0\/1 keys/);

    const foreign = (await request(server.url, '/tuf/other/root.json')).body.toString();
    const wrong = await tufClient(server, 'team', { root: foreign });
    await expect(wrong.updater().refresh()).rejects.toThrow(/signed by 0\/1 keys/);
  });
});
