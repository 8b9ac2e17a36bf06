/**
 * The CLI on a terminal, as the README shows it: `custody login URL -u admin` asks for the
 * password with echo off (as `docker login` does), `custody user passwd` asks twice, and
 * `custody user create` asks or says that the user cannot log in yet. Each run is the built CLI
 * on a real pseudo-terminal (util-linux `script`), typed into only once its prompt shows.
 */
import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, runCli, runOnTerminal } from './helpers/cli.ts';
import { basic, request, testAdmin } from './helpers/http.ts';
import { startInProcess, tempDir, type InProcessServer } from './helpers/server.ts';

let server: InProcessServer;
let home: string;

/** Whether a password logs the user in (Basic on GET /api/v1/me). */
const accepted = async (user: string, password: string) =>
  (await request(server.url, '/api/v1/me', { headers: { authorization: basic(user, password) } })).status === 200;

beforeAll(async () => {
  assertBuilt('prompt');
  // util-linux's script is in bsdutils, which every Debian has (Essential: yes)
  execFileSync('script', ['--version']);
  home = await tempDir('custody-tty-');
  server = await startInProcess({ config: { auth: { adminPassword: testAdmin.password, loginFailures: { max: 10_000, windowSeconds: 300 } } } });
});
afterAll(async () => {
  await server?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

describe('custody on a terminal', () => {
  it('login -u admin asks for the password and does not echo it', async () => {
    const r = await runOnTerminal(home, ['login', server.url, '-u', 'admin'], [{ prompt: 'Password: ', type: testAdmin.password }]);
    expect(r.output).toContain('Password: ');
    expect(r.output).toContain(`logged in to ${server.url} as admin (registry administrator)`);
    expect(r.output).not.toContain(testAdmin.password);
    expect(r.code, r.output).toBe(0);
  });

  it('login asks for the user name too, shown as typed, and takes editing keys in the password', async () => {
    // a typo, rubbed out with backspace (DEL, as terminals send it)
    const r = await runOnTerminal(
      home,
      ['login', server.url],
      [
        { prompt: 'Username: ', type: 'admin' },
        { prompt: 'Password: ', type: `x\u007f${testAdmin.password}` },
      ],
    );
    expect(r.output).toMatch(/Username: admin\n/);
    expect(r.output).not.toContain(testAdmin.password);
    expect(r.code, r.output).toBe(0);
  });

  it('a wrong password typed at the prompt is refused in one line', async () => {
    const r = await runOnTerminal(home, ['login', server.url, '-u', 'admin'], [{ prompt: 'Password: ', type: 'wrong-password' }]);
    expect(r.code).toBe(1);
    expect(r.output).toContain('custody: invalid username or password');
  });

  it('Ctrl-C at the prompt cancels', async () => {
    const r = await runOnTerminal(home, ['login', server.url, '-u', 'admin'], [{ prompt: 'Password: ', type: '\u0003', raw: true }]);
    expect(r.code).toBe(1);
    expect(r.output).toContain('custody: cancelled');
  });

  it('off a terminal it still wants --password-stdin or CUSTODY_PASSWORD', async () => {
    const r = await runCli(home, ['login', server.url, '-u', 'admin']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('custody: no password: type it when asked on a terminal, pipe it in with --password-stdin or set CUSTODY_PASSWORD');
    const env = await runCli(home, ['login', server.url, '-u', 'admin'], undefined, { CUSTODY_PASSWORD: testAdmin.password });
    expect(env.code, env.stderr).toBe(0);
  });

  it('user passwd asks twice, and changes nothing when the two differ', async () => {
    expect((await runCli(home, ['user', 'create', 'bob', '--password-stdin'], 'bob-first-password')).code).toBe(0);
    const differ = await runOnTerminal(
      home,
      ['user', 'passwd', 'bob'],
      [
        { prompt: 'New password for bob: ', type: 'bob-second-password' },
        { prompt: 'Retype it: ', type: 'bob-other-password' },
      ],
    );
    expect(differ.code).toBe(1);
    expect(differ.output).toContain('custody: the two passwords differ: nothing changed');
    expect(await accepted('bob', 'bob-first-password')).toBe(true);

    const same = await runOnTerminal(
      home,
      ['user', 'passwd', 'bob'],
      [
        { prompt: 'New password for bob: ', type: 'bob-second-password' },
        { prompt: 'Retype it: ', type: 'bob-second-password' },
      ],
    );
    expect(same.code, same.output).toBe(0);
    expect(same.output).toContain('changed the password of bob');
    expect(same.output).not.toContain('bob-second-password');
    expect(await accepted('bob', 'bob-second-password')).toBe(true);
    expect(await accepted('bob', 'bob-first-password')).toBe(false);
  });

  it('user create asks for a password; Enter for none says the user cannot log in yet', async () => {
    const withOne = await runOnTerminal(
      home,
      ['user', 'create', 'carol'],
      [
        { prompt: 'Password for carol (Enter for none): ', type: 'carol-password' },
        { prompt: 'Retype it: ', type: 'carol-password' },
      ],
    );
    expect(withOne.code, withOne.output).toBe(0);
    expect(withOne.output).toMatch(/created user carol\n/);
    expect(await accepted('carol', 'carol-password')).toBe(true);

    const none = await runOnTerminal(home, ['user', 'create', 'dave'], [{ prompt: 'Password for dave (Enter for none): ', type: '' }]);
    expect(none.code, none.output).toBe(0);
    expect(none.output).toContain('created user dave; it has no password, so it cannot log in until one is set: custody user passwd dave');
    const users = (await request(server.url, '/api/v1/users')).json<{ users: { name: string; hasPassword: boolean }[] }>();
    expect(users.users.find((u) => u.name === 'dave')?.hasPassword).toBe(false);
  });
});
