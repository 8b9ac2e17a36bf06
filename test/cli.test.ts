/**
 * The management commands of the built CLI (`npm run build` first) against a real server:
 * each test step runs `custody …` as a child process with its own XDG_CONFIG_HOME.
 */
import { existsSync } from 'node:fs';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type Run } from './helpers/cli.ts';
import { basic, descriptorOf, imageManifest, putManifest, request, testAdmin, types } from './helpers/http.ts';
import { projectRoot, startInProcess, tempDir, type InProcessServer } from './helpers/server.ts';
import { newKey, pushCosignSignature, pushSbom, settledArtifact } from './helpers/signing.ts';

let server: InProcessServer;
let home: string;

/** Runs the CLI asynchronously (the server answers from this same process). */
const custody = (args: string[], input?: string): Promise<Run> => runCli(home, args, input);

/** Runs the CLI and expects success; its stdout. */
async function ok(args: string[], input?: string): Promise<string> {
  const r = await custody(args, input);
  expect(r.code, `custody ${args.join(' ')}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

/** Runs the CLI and expects failure; its one-line stderr. */
async function fails(args: string[], input?: string): Promise<string> {
  const r = await custody(args, input);
  expect(r.code, `custody ${args.join(' ')}\n${r.stdout}`).toBe(1);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  return r.stderr.trim();
}

const credentialsFile = () => path.join(home, 'config', 'custody', 'credentials.json');

beforeAll(async () => {
  if (!existsSync(path.join(projectRoot, 'dist/cli/management.js'))) throw new Error('the CLI is not built: run `npm run build` first');
  home = await tempDir('custody-cli-');
  server = await startInProcess({ config: { auth: { adminPassword: testAdmin.password, loginFailures: { max: 10_000, windowSeconds: 300 } } } });
});
afterAll(async () => {
  await server?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

describe('custody CLI', () => {
  it('asks to log in first', async () => {
    expect(await fails(['token', 'list'])).toBe('custody: not logged in: run custody login URL');
  });

  it('refuses a wrong password and a bad URL with one line', async () => {
    expect(await fails(['login', server.url, '-u', 'admin', '--password-stdin'], 'wrong-password\n')).toBe('custody: invalid username or password');
    expect(await fails(['login', 'registry.example.com', '-u', 'admin', '--password-stdin'], 'x')).toMatch(/^custody: invalid URL/);
    expect(existsSync(credentialsFile())).toBe(false);
  });

  it('logs in with a personal token stored 0600', async () => {
    expect(await ok(['login', `${server.url}/`, '-u', 'admin', '--password-stdin'], `${testAdmin.password}\n`)).toBe(
      `logged in to ${server.url} as admin (registry administrator)\n`,
    );
    expect((await stat(credentialsFile())).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(credentialsFile()))).mode & 0o777).toBe(0o700);
    const stored = JSON.parse(await readFile(credentialsFile(), 'utf8')) as { url: string; username: string; token: string };
    expect(stored).toEqual({ url: server.url, username: 'admin', token: expect.stringMatching(/^cst_/) });
    expect(JSON.stringify(stored)).not.toContain(testAdmin.password);
    const tokens = JSON.parse(await ok(['token', 'list', '--json'])) as { tokens: { name: string }[] };
    expect(tokens.tokens.map((t) => t.name)).toEqual([expect.stringMatching(/^cli-/)]);
  });

  it('manages users', async () => {
    expect(await ok(['user', 'create', 'alice', '--password-stdin'], 'alice-password\n')).toBe('created user alice\n');
    expect(await fails(['user', 'create', 'alice'])).toBe('custody: user alice already exists');
    expect(await fails(['user', 'create', 'Bad Name'])).toMatch(/^custody: invalid user \(name\)/);
    const users = JSON.parse(await ok(['user', 'list', '--json'])) as { users: { name: string; admin: boolean }[] };
    expect(users.users.map((u) => u.name)).toEqual(['admin', 'alice']);
    const table = await ok(['user', 'list']);
    expect(table.split('\n')[0]).toMatch(/^NAME\s+ADMIN\s+PASSWORD\s+CREATED$/);
    expect(table).toMatch(/\nalice\s+no\s+yes\s+\d{4}-/);
    expect(await ok(['user', 'passwd', 'alice', '--password-stdin'], 'alice-new-password\n')).toBe('changed the password of alice\n');
    expect((await request(server.url, '/api/v1/me', { headers: { authorization: basic('alice', 'alice-new-password') } })).status).toBe(200);
    // off a terminal (stdin is a pipe here) nothing can be asked; on one it is (cli-terminal.test.ts)
    expect(await fails(['user', 'passwd', 'alice'])).toBe('custody: no password: type it when asked on a terminal, or pipe it in with --password-stdin');
    expect(await ok(['user', 'create', 'nopass'])).toBe(
      'created user nopass; it has no password, so it cannot log in until one is set: custody user passwd nopass\n',
    );
    const json = await custody(['user', 'create', 'nopass2', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ name: 'nopass2' });
    expect(json.stderr).toBe('it has no password, so it cannot log in until one is set: custody user passwd nopass2\n');
    for (const name of ['nopass', 'nopass2']) await ok(['user', 'delete', name]);
  });

  it('manages teams and members', async () => {
    expect(await ok(['team', 'create', 'devs'])).toBe('created team devs\n');
    expect(await ok(['team', 'add-member', 'devs', 'alice'])).toBe('added alice to devs\n');
    expect(await fails(['team', 'add-member', 'devs', 'nobody'])).toBe('custody: no user nobody');
    expect(JSON.parse(await ok(['team', 'list', '--json']))).toEqual({ teams: [{ name: 'devs', members: ['alice'] }] });
    expect(await ok(['team', 'list'])).toMatch(/^NAME\s+MEMBERS\ndevs\s+alice\n$/);
  });

  it('manages namespaces and grants', async () => {
    expect(await ok(['namespace', 'set', 'proj', '--anonymous-read', 'false'])).toBe('namespace proj: anonymous read off\n');
    expect(await fails(['namespace', 'set', 'proj', '--anonymous-read', 'maybe'])).toBe('custody: use true or false, not maybe');
    expect(await ok(['namespace', 'grant', 'proj', 'team', 'devs', 'writer'])).toBe('team devs is writer in proj\n');
    expect(await ok(['namespace', 'grant', 'proj', 'user', 'alice', 'admin'])).toBe('user alice is admin in proj\n');
    expect(await fails(['namespace', 'grant', 'proj', 'user', 'alice', 'owner'])).toMatch(/^custody: invalid grant \(role\)/);
    const shown = JSON.parse(await ok(['namespace', 'show', 'proj', '--json'])) as { grants: unknown[] };
    expect(shown).toMatchObject({ name: 'proj', anonymousRead: false });
    expect(shown.grants).toEqual([
      { kind: 'team', name: 'devs', role: 'writer' },
      { kind: 'user', name: 'alice', role: 'admin' },
    ]);
    expect(await ok(['namespace', 'show', 'proj'])).toMatch(/anonymous read: no[\s\S]*KIND\s+NAME\s+ROLE\nteam\s+devs\s+writer\nuser\s+alice\s+admin/);
    expect(await ok(['namespace', 'list'])).toMatch(/\nproj\s+no\s+/);
    expect(await fails(['namespace', 'show', 'missing'])).toMatch(/^custody: no namespace missing/);
  });

  let robotToken = '';

  it('manages robots and their tokens', async () => {
    expect(await ok(['robot', 'create', 'proj', 'ci'])).toMatch(/^created robot proj\+ci/);
    expect(await ok(['robot', 'list', 'proj'])).toMatch(/^NAME\s+CREATED\nproj\+ci\s+/);
    expect(await ok(['namespace', 'grant', 'proj', 'robot', 'ci', 'writer'])).toBe('robot ci is writer in proj\n');
    const r = await custody(['robot', 'token', 'proj', 'ci', '--name', 'deploy', '--scope', 'pull,push', '--expires-in-days', '7']);
    expect(r.code, r.stderr).toBe(0);
    robotToken = r.stdout.trim();
    expect(robotToken).toMatch(/^cst_[0-9a-f]{16}_/);
    expect(r.stderr).toMatch(/created token deploy .* for proj\+ci: scopes pull,push, expires \d{4}-/);
    const me = await request(server.url, '/api/v1/me', { headers: { authorization: basic('proj+ci', robotToken) } });
    expect(me.json()).toMatchObject({ name: 'proj+ci', kind: 'robot', namespace: 'proj' });
    const tokens = JSON.parse(await ok(['robot', 'tokens', 'proj', 'ci', '--json'])) as { tokens: { name: string; scopes: string[] }[] };
    expect(tokens.tokens).toMatchObject([{ name: 'deploy', scopes: ['pull', 'push'] }]);
    expect(JSON.stringify(tokens)).not.toContain(robotToken.slice(-20));
    expect(await fails(['robot', 'token', 'proj', 'ci', '--name', 'x', '--scope', 'fly'])).toMatch(/^custody: invalid token \(scopes/);
  });

  it('creates, lists and revokes personal tokens', async () => {
    const created = JSON.parse(await ok(['token', 'create', 'laptop', '--scope', 'pull', '--json'])) as { id: string; token: string; scopes: string[] };
    expect(created.scopes).toEqual(['pull']);
    const viaToken = basic('admin', created.token);
    expect((await request(server.url, '/api/v1/me', { headers: { authorization: viaToken } })).status).toBe(200);
    const list = await ok(['token', 'list']);
    expect(list).toMatch(new RegExp(`\\n${created.id}\\s+laptop\\s+pull\\s+never\\s+`));
    expect(list).not.toContain(created.token.slice(-20));
    expect(await ok(['token', 'revoke', created.id])).toBe(`revoked token ${created.id}\n`);
    expect((await request(server.url, '/api/v1/me', { headers: { authorization: viaToken } })).status).toBe(401);
    expect(await fails(['token', 'revoke', created.id])).toBe(`custody: no token ${created.id}`);
  });

  it('shows the audit log and rotates keys', async () => {
    const events = JSON.parse(await ok(['audit', '--action', 'user.create', '--json'])) as { events: { target: string; actor: string }[] };
    expect(events.events).toMatchObject([{ target: 'nopass2' }, { target: 'nopass' }, { target: 'alice', actor: 'admin' }]);
    const page = await custody(['audit', '--limit', '2']);
    expect(page.code).toBe(0);
    expect(page.stdout.split('\n')[0]).toMatch(/^ID\s+TIME\s+ACTOR\s+ACTION\s+TARGET\s+OUTCOME\s+SOURCE$/);
    expect(page.stdout.trim().split('\n')).toHaveLength(3);
    expect(page.stderr).toMatch(/^more: add --before \d+\n$/);
    expect(await ok(['audit', '--actor', 'admin', '--since', '2000-01-01T00:00:00Z', '--action', 'grant.set'])).toMatch(/grant\.set\s+proj\s+success/);
    expect(await fails(['audit', '--limit', '0'])).toMatch(/^custody: invalid audit query \(limit\): at least 1$/);
    expect(await ok(['keys', 'rotate'])).toMatch(/^new signing key [0-9a-f-]{36}\n$/);
  });

  it('removes what it made', async () => {
    expect(await ok(['namespace', 'revoke', 'proj', 'user', 'alice'])).toBe('user alice has no role in proj any more\n');
    expect(await fails(['namespace', 'revoke', 'proj', 'user', 'alice'])).toBe('custody: user alice has no role in proj');
    expect(await ok(['team', 'remove-member', 'devs', 'alice'])).toBe('removed alice from devs\n');
    expect(await ok(['robot', 'delete', 'proj', 'ci'])).toBe('deleted robot proj+ci\n');
    expect((await request(server.url, '/api/v1/me', { headers: { authorization: basic('proj+ci', robotToken) } })).status).toBe(401);
    expect(await ok(['team', 'delete', 'devs'])).toBe('deleted team devs\n');
    expect(await ok(['user', 'delete', 'alice'])).toBe('deleted user alice\n');
    expect(await fails(['user', 'delete', 'alice'])).toBe('custody: no user alice');
  });

  it('logs out: revokes the token and removes the file', async () => {
    const stored = JSON.parse(await readFile(credentialsFile(), 'utf8')) as { token: string };
    expect(await ok(['logout'])).toBe(`logged out of ${server.url}\n`);
    expect(existsSync(credentialsFile())).toBe(false);
    expect((await request(server.url, '/api/v1/me', { headers: { authorization: basic('admin', stored.token) } })).status).toBe(401);
    expect(await fails(['user', 'list'])).toBe('custody: not logged in: run custody login URL');
    const again = await custody(['logout']);
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/^not logged in/);
  });

  it('tells a revoked login to log in again', async () => {
    await ok(['login', server.url, '-u', 'admin', '--password-stdin'], testAdmin.password);
    const stored = JSON.parse(await readFile(credentialsFile(), 'utf8')) as { token: string };
    const id = stored.token.split('_')[1] as string;
    expect((await request(server.url, `/api/v1/tokens/${id}`, { method: 'DELETE' })).status).toBe(204);
    expect(await fails(['user', 'list'])).toBe(`custody: invalid username or password; run custody login ${server.url} again`);
    await ok(['logout']);
  });
});

describe('custody trust and artifact', () => {
  it('sets, shows and resets trust, and shows verdicts and components', async () => {
    await ok(['login', server.url, '-u', 'admin', '--password-stdin'], `${testAdmin.password}\n`);
    const key = newKey();
    const doc = path.join(home, 'trust.json');
    await writeFile(doc, JSON.stringify({ sigstore: { publicKeys: [{ name: 'release', pem: key.pem }] } }));
    expect(await ok(['trust', 'set', 'cli', '--file', doc])).toMatch(/^namespace cli: trust from api\ncosign keys: +release\n/);
    expect(await fails(['trust', 'set', 'cli', '--file', '-'], '{"sigstore":{"publicKeys":[{"name":"k","pem":"nope"}]}}')).toMatch(
      /^custody: invalid trust document \(sigstore\.publicKeys\.0\.pem\): not a PEM public key/,
    );
    expect(JSON.parse(await ok(['trust', 'show', 'cli', '--json']))).toMatchObject({ namespace: 'cli', source: 'api' });

    const { body } = await imageManifest(server.url, 'cli/app', ['cli layer']);
    expect((await putManifest(server.url, 'cli/app', 'v1', body)).status).toBe(201);
    const image = descriptorOf(body, types.manifest);
    await pushCosignSignature(server.url, 'cli/app', image, key);
    await pushSbom(server.url, 'cli/app', image, [{ name: 'lodash', version: '4.17.21', purl: 'pkg:npm/lodash@4.17.21', license: 'MIT' }]);
    await settledArtifact(server.url, 'cli/app', image.digest);

    const shown = await ok(['artifact', 'show', 'cli/app', image.digest]);
    expect(shown).toContain(`cli/app@${image.digest} (v1)`);
    expect(shown).toContain('1 of 1 signatures verified, 0 attestations, 1 SBOMs');
    expect(shown).toMatch(/\nsignature\s+cosign\s+yes\s+verified\s+key:release\s+signed with the configured key release/);
    expect(await ok(['artifact', 'components', 'cli/app', image.digest])).toMatch(
      /^NAME\s+VERSION\s+LICENSES\s+PURL\s+SBOM\nlodash\s+4\.17\.21\s+MIT\s+pkg:npm\/lodash@4\.17\.21\s+cyclonedx 1\.6\n$/,
    );
    expect(await fails(['artifact', 'show', 'cli/app', `sha256:${'0'.repeat(64)}`])).toBe(
      `custody: no manifest sha256:${'0'.repeat(64)} in repository cli/app`,
    );

    expect(await ok(['trust', 'reset', 'cli'])).toMatch(/^namespace cli: trust from none \(judging 2 artifacts again\)/);
    await ok(['logout']);
  });

  it('trust set --cosign-key reads public keys from files, and never sends a private one', async () => {
    await ok(['login', server.url, '-u', 'admin', '--password-stdin'], `${testAdmin.password}\n`);
    const key = newKey();
    await writeFile(path.join(home, 'release.pub'), key.pem);
    await writeFile(path.join(home, 'private.pem'), key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    expect(await ok(['trust', 'set', 'keys', '--cosign-key', `release=${path.join(home, 'release.pub')}`])).toMatch(
      /^namespace keys: trust from api\ncosign keys: +release\n/,
    );
    const shown = JSON.parse(await ok(['trust', 'show', 'keys', '--json'])) as { sigstore: { publicKeys: { name: string; pem: string }[] } };
    expect(shown.sigstore.publicKeys).toEqual([{ name: 'release', pem: key.pem }]);
    expect(await fails(['trust', 'set', 'keys', '--cosign-key', `release=${path.join(home, 'private.pem')}`])).toBe(
      `custody: ${path.join(home, 'private.pem')} is a private key: give its public key (openssl ec -in key.pem -pubout -out key.pub)`,
    );
    expect(await fails(['trust', 'set', 'keys', '--cosign-key', 'release'])).toBe('custody: give --cosign-key as NAME=FILE, not release');
    expect(await fails(['trust', 'set', 'keys'])).toBe('custody: give the trust with --file FILE, or cosign keys with --cosign-key NAME=FILE');
    // with --file, the keys are added to the document's
    const doc = path.join(home, 'keys.json');
    await writeFile(doc, JSON.stringify({ sigstore: { publicKeys: [{ name: 'old', pem: newKey().pem }] } }));
    expect(await ok(['trust', 'set', 'keys', '--file', doc, '--cosign-key', `release=${path.join(home, 'release.pub')}`])).toMatch(
      /cosign keys: +old, release\n/,
    );
    await ok(['trust', 'reset', 'keys']);
    await ok(['logout']);
  });
});

describe('custody namespace list', () => {
  it('shows the namespaces something was pushed to, not only those created through the API', async () => {
    await ok(['login', server.url, '-u', 'admin', '--password-stdin'], `${testAdmin.password}\n`);
    // cli/app was pushed above without `namespace set cli`; proj was created and holds nothing
    const { body } = await imageManifest(server.url, 'pushed.only/deep/app', ['pushed layer']);
    expect((await putManifest(server.url, 'pushed.only/deep/app', 'v1', body)).status).toBe(201);
    const data = JSON.parse(await ok(['namespace', 'list', '--json'])) as {
      namespaces: { name: string; created: boolean; createdAt: string | null; anonymousRead: boolean }[];
    };
    expect(data.namespaces.map((n) => n.name)).toEqual(['cli', 'proj', 'pushed.only']);
    expect(data.namespaces[0]).toEqual({
      name: 'cli',
      anonymousRead: false,
      quotaBytes: 0,
      softQuotaBytes: 0,
      labels: {},
      collectUntagged: false,
      createdAt: null,
      created: false,
    });
    expect(data.namespaces[1]).toMatchObject({ name: 'proj', created: true, createdAt: expect.stringMatching(/^\d{4}-/) });
    const table = await ok(['namespace', 'list']);
    expect(table).toMatch(/\ncli\s+no\s+no \(pushed to; custody namespace set to create it\)\n/);
    expect(table).toMatch(/\nproj\s+no\s+\d{4}-/);
    // creating it gives it settings; it is listed once
    await ok(['namespace', 'set', 'cli']);
    const after = JSON.parse(await ok(['namespace', 'list', '--json'])) as { namespaces: { name: string; created: boolean }[] };
    expect(after.namespaces.filter((n) => n.name === 'cli')).toEqual([expect.objectContaining({ created: true })]);
    await ok(['logout']);
  });
});

describe('custody config check', () => {
  it('reads the files the trust configuration names, and names the one it cannot read', async () => {
    const file = path.join(home, 'custody.yaml');
    await writeFile(
      file,
      'trust:\n  namespaces:\n    team:\n      sigstore:\n        publicKeys:\n          - name: release\n            pem: /nonexistent/release.pem\n',
    );
    const r = await custody(['config', 'check', '--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('trust.namespaces.team.sigstore.publicKeys.release: cannot read /nonexistent/release.pem');
    const key = newKey();
    await writeFile(path.join(home, 'release.pem'), key.pem);
    await writeFile(
      file,
      `trust:\n  namespaces:\n    team:\n      sigstore:\n        publicKeys:\n          - name: release\n            pem: ${path.join(home, 'release.pem')}\n`,
    );
    const good = await custody(['config', 'check', '--config', file]);
    expect(good.code, good.stderr).toBe(0);
    expect(good.stderr).toContain('configuration is valid');
  });

  it('reads the TLS files, as the server does at start', async () => {
    const file = path.join(home, 'tls.yaml');
    await writeFile(file, 'tls:\n  certificate: /nonexistent/cert.pem\n  key: /nonexistent/key.pem\n');
    const r = await custody(['config', 'check', '--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('cannot read the TLS certificate /nonexistent/cert.pem (from tls.certificate in');
  });
});
