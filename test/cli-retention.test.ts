/**
 * `custody retention …` run as a user runs it: the built CLI (`npm run build` first) as a child
 * process against a listening server in this process. Set, show, list, dry-run, run, the run log,
 * and the errors a user sees.
 */
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, runCli, runOnTerminal, type Run } from './helpers/cli.ts';
import { imageManifest, putManifest, request, testAdmin } from './helpers/http.ts';
import { startInProcess, tempDir, type InProcessServer } from './helpers/server.ts';

let server: InProcessServer;
let home: string;

const custody = (args: string[], input?: string): Promise<Run> => runCli(home, args, input);

async function ok(args: string[], input?: string): Promise<string> {
  const r = await custody(args, input);
  expect(r.code, `custody ${args.join(' ')}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

async function fails(args: string[], input?: string): Promise<string> {
  const r = await custody(args, input);
  expect(r.code, `custody ${args.join(' ')}\n${r.stdout}`).toBe(1);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  return r.stderr.trim();
}

const rules = `# keep the two newest, and latest whatever happens
keep: { newest: 2 }
protect: [latest]
`;

beforeAll(async () => {
  assertBuilt('retention');
  home = await tempDir('custody-cli-retention-');
  server = await startInProcess({ config: { auth: { adminPassword: testAdmin.password }, lifecycle: { retention: { intervalSeconds: 0 } } } });
  await ok(['login', server.url, '-u', 'admin', '--password-stdin'], `${testAdmin.password}\n`);
  for (const v of ['v1', 'v2', 'v3']) {
    const m = await imageManifest(server.url, 'team/app', [`cli layer ${v}`]);
    expect((await putManifest(server.url, 'team/app', v, m.body)).status).toBe(201);
  }
  const latest = await imageManifest(server.url, 'team/app', ['cli layer v1']);
  expect((await putManifest(server.url, 'team/app', 'latest', latest.body)).status).toBe(201);
});
afterAll(async () => {
  await server?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

describe('custody retention', () => {
  it('sets rules from a file, shows them as written, and lists them', async () => {
    const file = path.join(home, 'rules.yaml');
    await writeFile(file, rules);
    expect(await ok(['retention', 'set', '-f', file, 'team'])).toBe('retention rules of namespace team set\n');
    const shown = await custody(['retention', 'show', 'team']);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toBe(rules);
    expect(shown.stderr).toMatch(/^# retention rules of namespace team, set by admin at /);
    expect(await ok(['retention', 'set', '-f', '-', 'team/app'], 'keep: { tag: "*" }\n')).toBe('retention rules of repository team/app set\n');
    const list = await ok(['retention', 'list']);
    expect(list).toMatch(/^KIND +NAME +SET BY +AT\nnamespace +team +admin .*\nrepository +team\/app +admin /);
    expect((JSON.parse(await ok(['retention', 'list', '--namespace', 'team', '--json'])) as { rules: unknown[] }).rules).toHaveLength(2);
    expect(await ok(['retention', 'delete', 'team/app'])).toBe('deleted the retention rules of repository team/app\n');
  });

  it('says what is wrong with rules, and with a target', async () => {
    const file = path.join(home, 'bad.yaml');
    await writeFile(file, 'keep: { newest: two }\n');
    expect(await fails(['retention', 'set', '-f', file, 'team'])).toMatch(/^custody: keep.newest: how many tags to keep/);
    expect(await fails(['retention', 'set', '-f', path.join(home, 'missing.yaml'), 'team'])).toMatch(/^custody: cannot read .*missing.yaml/);
    expect(await fails(['retention', 'show', 'nothing'])).toBe('custody: no retention rules for namespace nothing');
    expect(await fails(['retention', 'show', 'team/'])).toBe('custody: give a namespace (team) or a repository (team/app), not team/');
    expect(await fails(['retention', 'runs', 'not-an-id'])).toMatch(/^custody: invalid run id/);
  });

  it('dry-runs, then runs, and lists and shows the runs', async () => {
    const dry = await ok(['retention', 'run', 'team', '--dry-run']);
    expect(dry).toMatch(
      /^dry run \S+ over namespace team \([\d.]+ s\): 2 tags and 1 manifest in 1 repository would be deleted, freeing \d+ B in 1 blob \(an estimate/,
    );
    expect(dry).toMatch(/REPOSITORY +KIND +TAG OR DIGEST +RULE +REASON/);
    expect(dry).toMatch(/team\/app +tag +v1 +keep +not kept by the rules of namespace team: newest 2: the 4th newest/);
    expect((await request(server.url, '/v2/team/app/manifests/v1')).status).toBe(200);

    const real = JSON.parse(await ok(['retention', 'run', 'team', '--json'])) as {
      id: string;
      status: string;
      counts: { tagsDeleted: number };
      result: { deletions: unknown[] };
    };
    expect(real).toMatchObject({ status: 'done', counts: { tagsDeleted: 2, manifestsDeleted: 1 } });
    for (const [ref, code] of [
      ['v1', 404],
      ['v2', 404],
      ['v3', 200],
      ['latest', 200],
    ] as const)
      expect((await request(server.url, `/v2/team/app/manifests/${ref}`)).status, ref).toBe(code);

    const runs = await ok(['retention', 'runs']);
    expect(runs.split('\n')[0]).toMatch(/^ID +STARTED +BY +SCOPE +DRY RUN +STATUS +TAGS +MANIFESTS +VETOED +FREES +ERRORS$/);
    expect(runs.split('\n').filter((l) => l.includes('namespace team'))).toHaveLength(2);
    const shown = await ok(['retention', 'runs', real.id]);
    expect(shown).toMatch(new RegExp(`^run ${real.id} over namespace team \\([\\d.]+ s\\): deleted 2 tags and 1 manifest`));
    // on a terminal, a progress bar first (off one, as above, the summary alone)
    const terminal = await runOnTerminal(home, ['retention', 'run', 'team', '--dry-run'], []);
    expect(terminal.code).toBe(0);
    expect(terminal.output).toMatch(/ (starting|planning|done) \[[-█░]+\] \d+\/\d+/);
    expect(terminal.output).toMatch(/\ndry run \S+ over namespace team/);
    const started = await ok(['retention', 'run', 'team', '--dry-run', '--no-wait']);
    expect(started).toMatch(/^started dry run \S+; see it with custody retention runs \S+\n$/);
  });
});
