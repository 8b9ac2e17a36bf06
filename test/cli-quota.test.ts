/**
 * `custody namespace set --quota/--soft-quota/--collect-untagged` and `custody namespace usage`, run
 * as a user runs them: the built CLI (`npm run build` first) against a listening server here.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, runCli, type Run } from './helpers/cli.ts';
import { pushBlob, request, sha256, testAdmin } from './helpers/http.ts';
import { startInProcess, tempDir, type InProcessServer } from './helpers/server.ts';

let server: InProcessServer;
let home: string;

const custody = (args: string[], input?: string): Promise<Run> => runCli(home, args, input);
async function ok(args: string[]): Promise<string> {
  const r = await custody(args);
  expect(r.code, `custody ${args.join(' ')}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

beforeAll(async () => {
  assertBuilt('namespaces');
  home = await tempDir('custody-cli-quota-');
  server = await startInProcess({ config: { auth: { adminPassword: testAdmin.password } } });
  const login = await custody(['login', server.url, '-u', 'admin', '--password-stdin'], `${testAdmin.password}\n`);
  expect(login.code, login.stderr).toBe(0);
});
afterAll(async () => {
  await server?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

describe('custody namespace usage', () => {
  it('sets hard and soft quotas, shows the fair usage beside them, and lists every namespace', async () => {
    expect(await ok(['namespace', 'set', 'team', '--quota', '2KiB', '--soft-quota', '1000', '--collect-untagged', 'true'])).toBe(
      'namespace team: anonymous read off, quota 2 KiB (2048 bytes), soft quota 1000 B, untagged manifests collected\n',
    );
    const shown = await ok(['namespace', 'show', 'team']);
    expect(shown).toContain('\nquota:          2 KiB (2048 bytes)\nsoft quota:     1000 B\n');
    expect(shown).toContain('\ncollect untagged manifests: yes\n');

    const shared = randomBytes(600);
    await pushBlob(server.url, 'team/app', shared);
    await pushBlob(server.url, 'other/app', shared);
    await pushBlob(server.url, 'team/app', randomBytes(800));
    expect(await ok(['namespace', 'usage', 'team'])).toMatch(
      new RegExp(
        [
          '^namespace: {6}team',
          'used: {11}1\\.1 KiB \\(1100 bytes\\): fair share of blobs \\+ manifests',
          ' {2}blobs: {8}1\\.1 KiB fair share of 2 blobs \\(1 shared with other namespaces\\); 1\\.4 KiB counted in full',
          ' {2}manifests: {4}0 B in 0 manifests',
          'hard quota: {5}1\\.1 KiB of 2 KiB \\(53\\.7 %\\)',
          'soft quota: {5}1\\.1 KiB of 1000 B \\(110\\.0 %\\), OVER since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\n$',
        ].join('\\n'),
      ),
    );
    const listed = await ok(['namespace', 'usage']);
    expect(listed).toMatch(/^NAMESPACE\s+USED\s+FAIR BLOBS\s+BLOBS IN FULL\s+MANIFESTS\s+HARD QUOTA\s+SOFT QUOTA\n/);
    expect(listed).toMatch(/\nother\s+300\s+300\s+600\s+0\s+-\s+-\n/);
    expect(listed).toMatch(/\nteam\s+1100\s+1100\s+1400\s+0\s+2048\s+1000 OVER\n/);
    expect(listed).toContain('\nstored blobs: 1.4 KiB (1400 bytes, each once: the sum of the fair shares); manifests: 0 B (0 bytes)\n');
    const json = JSON.parse(await ok(['namespace', 'usage', 'team', '--json'])) as Record<string, unknown>;
    expect(json).toMatchObject({
      namespace: 'team',
      usedBytes: 1100,
      physicalBlobBytes: 1400,
      hardQuotaBytes: 2048,
      softQuotaBytes: 1000,
      overSoftQuota: true,
    });
  });

  it('reports a refused push with the figures, as the registry answered it', async () => {
    const blob = randomBytes(1000);
    const r = await request(server.url, `/v2/team/app/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: blob });
    expect(r.status).toBe(403);
    expect(r.json()).toMatchObject({
      errors: [
        {
          code: 'DENIED',
          message: 'namespace team is over its hard quota: it uses 1100 bytes (fair share), this blob would add 1000, and the quota is 2048 bytes',
        },
      ],
    });
    const failed = await custody(['namespace', 'usage', 'nowhere']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^custody: no namespace nowhere/);
  });
});
