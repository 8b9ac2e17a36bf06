/**
 * `custody serve` starting, as a real process (`npm run build` first): a start that fails says
 * so in one line naming the value and the setting it came from, exits non-zero, and creates no
 * admin nor prints a password; a later start with a changed CUSTODY_ADMIN_PASSWORD says it is
 * ignored; `custody admin reset-password` gives a lost admin a new password; the start-up log
 * names the database and the blob store in use.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { failureKeys } from '../src/auth/authenticate.ts';
import { openMetaStore } from '../src/meta/open.ts';
import { basic, request } from './helpers/http.ts';
import { dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';
import { projectRoot, startProcess, tempDir, type ProcessServer } from './helpers/server.ts';
import { spawnCustody, type Spawned } from './helpers/spawn.ts';

const dirs: string[] = [];
const servers: ProcessServer[] = [];
let work: string;

beforeAll(async () => {
  if (!existsSync(path.join(projectRoot, 'dist/cli/main.js'))) throw new Error('the server is not built: run `npm run build` first');
  work = await tempDir('custody-startup-');
  dirs.push(work);
});
afterAll(async () => {
  // every server started here, also those a failed test left running (stop() twice is harmless)
  for (const s of servers) await s.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A data directory for one start, not made yet (the server makes it). */
async function fresh(name: string): Promise<string> {
  return path.join(work, name);
}

/** Runs `custody …` to its end. */
async function finished(
  args: string[],
  env: Record<string, string | undefined> = {},
  input?: string,
  cwd?: string,
): Promise<Spawned & { code: number | null }> {
  const p = spawnCustody(args, { env, ...(input !== undefined ? { input } : {}), ...(cwd !== undefined ? { cwd } : {}) });
  const { code } = await p.exited;
  return { ...p, code };
}

/** A start that fails: exit code 1 and exactly one line of output, which is returned. */
async function failsToStart(args: string[], env: Record<string, string | undefined> = {}, cwd?: string): Promise<string> {
  const p = await finished(['serve', ...args], env, undefined, cwd);
  expect(p.code, p.output()).toBe(1);
  const lines = p.output().trim().split('\n');
  expect(lines, p.output()).toHaveLength(1);
  return lines[0] ?? '';
}

async function usersIn(dataDir: string): Promise<number> {
  const meta = await openMetaStore(path.join(dataDir, 'custody.db'));
  try {
    return await meta.accounts.countUsers();
  } finally {
    await meta.close();
  }
}

describe('a port in use', () => {
  let first: ProcessServer;
  beforeAll(async () => {
    first = await startProcess();
    servers.push(first);
  });

  it('stops the start before the admin is made: no password printed, no account created', async () => {
    const dataDir = await fresh('second');
    const line = await failsToStart(['--listen', first.host, '--data-dir', dataDir], { CUSTODY_ADMIN_PASSWORD: undefined });
    expect(line).toBe(`custody: cannot listen on ${first.host} (from --listen): the address is already in use (is another server running there?)`);
    expect(line).not.toMatch(/password/i);
    expect(await usersIn(dataDir)).toBe(0);
    // The first server still serves, unharmed.
    expect((await request(first.url, '/v2/')).status).toBe(200);
  });

  it('with the data directory of the server already there, too', async () => {
    const line = await failsToStart(['--listen', first.host, '--data-dir', first.dataDir]);
    expect(line).toMatch(/^custody: cannot listen on 127\.0\.0\.1:\d+ \(from --listen\): the address is already in use/);
  });

  it('names CUSTODY_LISTEN, or the config key, when the address came from there', async () => {
    expect(await failsToStart(['--data-dir', await fresh('by-env')], { CUSTODY_LISTEN: first.host })).toMatch(
      new RegExp(`^custody: cannot listen on ${first.host} \\(from CUSTODY_LISTEN\\): the address is already in use`),
    );
    const file = path.join(work, 'listen.yaml');
    await writeFile(file, `listen: ${first.host}\n`);
    expect(await failsToStart(['--data-dir', await fresh('by-file'), '--config', file])).toMatch(
      new RegExp(`^custody: cannot listen on ${first.host} \\(from listen in ${file.replaceAll('.', '\\.')}\\)`),
    );
  });
});

describe('CUSTODY_ADMIN_PASSWORD after the first start', () => {
  it('warns once when it is no longer the admin password, and is ignored', async () => {
    const dataDir = await fresh('changed');
    const original = await startProcess({ dataDir, env: { CUSTODY_ADMIN_PASSWORD: 'first-password' } });
    servers.push(original);
    await vi.waitFor(() => expect(original.output()).toContain('created the admin account \\"admin\\" with the password from CUSTODY_ADMIN_PASSWORD'), {
      timeout: 10_000,
    });
    await original.stop();

    const same = await startProcess({ dataDir, env: { CUSTODY_ADMIN_PASSWORD: 'first-password' } });
    servers.push(same);
    await vi.waitFor(() => expect(same.output()).toContain('custody is serving'), { timeout: 10_000 });
    expect(same.output()).not.toMatch(/is set but the database already has its users/);
    await same.stop();

    const changed = await startProcess({ dataDir, env: { CUSTODY_ADMIN_PASSWORD: 'second-password' } });
    servers.push(changed);
    await vi.waitFor(() => expect(changed.output()).toContain('custody is serving'), { timeout: 10_000 });
    const warnings = changed
      .output()
      .split('\n')
      .filter((l) => l.includes('is set but the database already has its users'));
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0] ?? '{}')).toMatchObject({
      level: 40,
      setting: 'CUSTODY_ADMIN_PASSWORD',
      msg: expect.stringContaining('custody admin reset-password'),
    });
    expect(warnings[0]).not.toContain('second-password');
    expect((await request(changed.url, '/v2/', { headers: { authorization: basic('admin', 'second-password') } })).status).toBe(401);
    expect((await request(changed.url, '/v2/', { headers: { authorization: basic('admin', 'first-password') } })).status).toBe(200);
  });
});

describe('custody admin reset-password', () => {
  let server: ProcessServer;
  let config: string;
  beforeAll(async () => {
    config = path.join(work, 'strict-logins.yaml');
    await writeFile(config, 'auth:\n  loginFailures:\n    max: 2\n');
    // A first start with a generated password that nobody kept.
    server = await startProcess({ dataDir: await fresh('lost'), env: { CUSTODY_ADMIN_PASSWORD: '' }, args: ['--config', config] });
    servers.push(server);
    await vi.waitFor(() => expect(server.output()).toContain('custody is serving'), { timeout: 10_000 });
  });

  it('prints a new password once; it logs in at once, the throttle it met is cleared, the audit log has it', async () => {
    // Someone has been guessing from this address: it is held back for the whole window (300 s).
    const meta = await openMetaStore(path.join(server.dataDir, 'custody.db'));
    for (let i = 0; i < 12; i++) await meta.accounts.recordFailure(failureKeys.accountAt('admin', '127.0.0.1'), Date.now());
    await meta.close();
    expect((await request(server.url, '/v2/', { headers: { authorization: basic('admin', 'a-guess') } })).status).toBe(429);

    const reset = await finished(['admin', 'reset-password', '--data-dir', server.dataDir]);
    expect(reset.code, reset.output()).toBe(0);
    const password = reset.output().split('\n')[0] ?? '';
    expect(password).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(reset.stderr()).toContain('set a new password for admin, shown this once');

    const admin = { authorization: basic('admin', password) };
    expect((await request(server.url, '/v2/', { headers: admin })).status).toBe(200);
    const audit = await request(server.url, '/api/v1/audit?action=user.password', { headers: admin });
    expect(audit.json<{ events: unknown[] }>().events).toEqual([
      expect.objectContaining({
        action: 'user.password',
        target: 'admin',
        outcome: 'success',
        actor: expect.stringMatching(/^local:/),
        detail: expect.objectContaining({ by: 'reset-password' }),
      }),
    ]);
  });

  it('takes a password from stdin and a --database-url; the old one stops working', async () => {
    const r = await finished(
      ['admin', 'reset-password', '--database-url', path.join(server.dataDir, 'custody.db'), '--password-stdin'],
      {},
      'chosen-password\n',
    );
    expect(r.code, r.output()).toBe(0);
    expect(r.output()).toBe('changed the password of admin\n');
    expect((await request(server.url, '/v2/', { headers: { authorization: basic('admin', 'chosen-password') } })).status).toBe(200);
  });

  it('refuses, in one line, a user that does not exist, a short password, and a data directory without a database', async () => {
    const noUser = await finished(['admin', 'reset-password', '--data-dir', server.dataDir, '--user', 'nobody']);
    expect([noUser.code, noUser.output().trim()]).toEqual([1, `custody: no user nobody in the database ${path.join(server.dataDir, 'custody.db')}`]);
    const short = await finished(['admin', 'reset-password', '--data-dir', server.dataDir, '--password-stdin'], {}, 'short\n');
    expect([short.code, short.output().trim()]).toEqual([1, 'custody: the password needs at least 8 characters']);
    const empty = path.join(work, 'never-started');
    const missing = await finished(['admin', 'reset-password', '--data-dir', empty]);
    expect([missing.code, missing.output().trim()]).toEqual([
      1,
      `custody: no database at ${path.join(empty, 'custody.db')}: give the server's --data-dir or --database-url`,
    ]);
    expect(existsSync(empty)).toBe(false);
  });
});

describe('start-up errors', () => {
  it('an unreachable database: its URL without the password, and the variable or key it came from', async () => {
    const dataDir = await fresh('unreachable');
    const url = 'postgres://u:secret@127.0.0.1:1/x';
    const line = await failsToStart(['--data-dir', dataDir], { CUSTODY_DATABASE_URL: url });
    expect(line).toBe(
      'custody: cannot open the PostgreSQL database postgres://u:***@127.0.0.1:1/x (from CUSTODY_DATABASE_URL): connect ECONNREFUSED 127.0.0.1:1',
    );
    const file = path.join(work, 'database.yaml');
    await writeFile(file, `database:\n  url: ${url}\n`);
    const fromFile = await failsToStart(['--data-dir', dataDir, '--config', file]);
    expect(fromFile).toBe(
      `custody: cannot open the PostgreSQL database postgres://u:***@127.0.0.1:1/x (from database.url in ${file}): connect ECONNREFUSED 127.0.0.1:1`,
    );
    expect(fromFile).not.toContain('secret');
  });

  it('a data directory that cannot be made or written', async () => {
    const file = path.join(work, 'a-file');
    await writeFile(file, 'not a directory');
    const dataDir = path.join(file, 'data');
    expect(await failsToStart(['--data-dir', dataDir])).toBe(
      `custody: cannot use the data directory ${dataDir} (from --data-dir): part of the path is a file, not a directory`,
    );
    expect(await failsToStart([], { CUSTODY_DATA_DIR: dataDir })).toBe(
      `custody: cannot use the data directory ${dataDir} (from CUSTODY_DATA_DIR): part of the path is a file, not a directory`,
    );
    expect(await failsToStart(['--data-dir', file])).toBe(`custody: cannot use the data directory ${file} (from --data-dir): it is a file, not a directory`);
  });

  it('a blob store that cannot be made, or cannot be reached', async () => {
    const file = path.join(work, 'another-file');
    await writeFile(file, 'not a directory');
    const blobs = path.join(file, 'blobs');
    expect(await failsToStart(['--data-dir', await fresh('blobs-env')], { CUSTODY_STORAGE_URL: blobs })).toBe(
      `custody: cannot use the blob store ${blobs} (from CUSTODY_STORAGE_URL): part of the path is a file, not a directory`,
    );
    const config = path.join(work, 'storage.yaml');
    await writeFile(config, 'storage:\n  url: s3://bucket/prefix\n');
    // no AWS credentials anywhere on this machine: S3 cannot be used, and start-up says why at once
    const s3 = await failsToStart(['--data-dir', await fresh('blobs-file'), '--config', config]);
    expect(s3.startsWith(`custody: cannot use the blob store s3://bucket/prefix (from storage.url in ${config}): `), s3).toBe(true);
    expect(s3).toMatch(/credentials/i);
  });

  it('a default data directory: named with the flag, variable and key that change it', async () => {
    const cwd = path.join(work, 'cwd');
    await mkdir(cwd);
    await writeFile(path.join(cwd, 'custody-data'), 'in the way');
    expect(await failsToStart(['--listen', '127.0.0.1:0'], {}, cwd)).toBe(
      `custody: cannot use the data directory ${path.join(cwd, 'custody-data')} (the default; set --data-dir, CUSTODY_DATA_DIR or dataDir in the config file): it is a file, not a directory`,
    );
  });
});

describe('the start-up log', () => {
  it('names the SQLite database and the blob directory in use', async () => {
    const server = await startProcess({ dataDir: await fresh('log-sqlite') });
    servers.push(server);
    await vi.waitFor(() => expect(server.output()).toContain('custody is serving'), { timeout: 10_000 });
    const line =
      server
        .output()
        .split('\n')
        .find((l) => l.includes('custody is serving')) ?? '';
    expect(JSON.parse(line)).toMatchObject({
      database: { engine: 'sqlite', url: path.join(server.dataDir, 'custody.db') },
      storage: { driver: 'filesystem', url: path.join(server.dataDir, 'blobs') },
    });
  });

  it('names a PostgreSQL database by its URL without the password', async (ctx) => {
    if (!(await postgresAvailable())) return ctx.skip();
    const url = new URL(await freshDatabase());
    // The test server lets loopback in without a password; one in the URL is there to be hidden.
    url.password = 'hunter2-secret';
    try {
      const server = await startProcess({ dataDir: await fresh('log-pg'), env: { CUSTODY_DATABASE_URL: url.toString() } });
      servers.push(server);
      await vi.waitFor(() => expect(server.output()).toContain('custody is serving'), { timeout: 10_000 });
      const line =
        server
          .output()
          .split('\n')
          .find((l) => l.includes('custody is serving')) ?? '';
      expect(JSON.parse(line)).toMatchObject({ database: { engine: 'postgres', url: `postgres://postgres:***@${url.host}${url.pathname}` } });
      expect(server.output()).not.toContain('hunter2-secret');
      await server.stop();
    } finally {
      await dropDatabases();
    }
  });
});
