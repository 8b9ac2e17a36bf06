/**
 * `custody policy …` and the namespace settings policies read, run as a user runs them: the built
 * CLI (`npm run build` first) as a child process against a listening server in this process.
 */
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { byteSize } from '../src/cli/namespaces.ts';
import { artifactRef, when } from '../src/cli/policy.ts';
import { inputSchema } from '../src/policy/input-schema.ts';
import { assertBuilt, runCli, type Run } from './helpers/cli.ts';
import { imageManifest, putManifest, testAdmin } from './helpers/http.ts';
import { startInProcess, tempDir, type InProcessServer } from './helpers/server.ts';

let server: InProcessServer;
let home: string;
/** the digest of team/app:v1, pushed without a cost-center */
let unpaidDigest = '';

const custody = (args: string[], input?: string): Promise<Run> => runCli(home, args, input);

async function ok(args: string[], input?: string): Promise<string> {
  const r = await custody(args, input);
  expect(r.code, `custody ${args.join(' ')}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

/** Runs the CLI and expects failure with one line on stderr; that line. */
async function fails(args: string[], input?: string): Promise<string> {
  const r = await custody(args, input);
  expect(r.code, `custody ${args.join(' ')}\n${r.stdout}`).toBe(1);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  return r.stderr.trim();
}

/** Writes a file in the test's home; its path. */
async function file(name: string, text: string): Promise<string> {
  const at = path.join(home, name);
  await writeFile(at, text);
  return at;
}

/** Reruns a --json command until `done` says its answer is complete (decisions and recorded inputs are written each second). */
async function eventually<T>(args: string[], done: (value: T) => boolean): Promise<T> {
  for (let i = 0; ; i++) {
    const value = JSON.parse(await ok([...args, '--json'])) as T;
    if (done(value) || i >= 50) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const costCenter = (mode: string) => `# who pays for what is pushed
name: require-cost-center
description: every push names who pays for it
actions: [push]
mode: ${mode}
deny: '!("cost-center" in artifact.annotations)'
message: 'pushes to {{ artifact.repository }} need a cost-center annotation'
`;
const enforced = costCenter('enforce');
const refusal = 'pushes to team/app need a cost-center annotation';

beforeAll(async () => {
  assertBuilt('policy');
  home = await tempDir('custody-cli-policy-');
  server = await startInProcess({ config: { auth: { adminPassword: testAdmin.password } } });
  await ok(['login', server.url, '-u', 'admin', '--password-stdin'], `${testAdmin.password}\n`);
  // before any policy decides: one image without a cost-center and one with
  const unpaid = await imageManifest(server.url, 'team/app', ['layer-v1']);
  expect((await putManifest(server.url, 'team/app', 'v1', unpaid.body)).status).toBe(201);
  unpaidDigest = unpaid.digest;
  const paid = await imageManifest(server.url, 'team/app', ['layer-paid'], { annotations: { 'cost-center': 'cc-42' } });
  expect((await putManifest(server.url, 'team/app', 'paid', paid.body)).status).toBe(201);
});
afterAll(async () => {
  await server?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

describe('custody policy', () => {
  it('prints the input schema without a server or a login', async () => {
    const stranger = await tempDir('custody-cli-nologin-');
    try {
      const r = await runCli(stranger, ['policy', 'schema']);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual(inputSchema);
    } finally {
      await rm(stranger, { recursive: true, force: true });
    }
  });

  it('applies a policy, then a new version from stdin, and refuses a bad one with the CEL error and its position', async () => {
    expect(await ok(['policy', 'apply', '-f', await file('dry.yaml', costCenter('dry-run'))])).toBe(
      'policy require-cost-center version 1 saved (mode dry-run)\n',
    );
    expect(await ok(['policy', 'apply', '-f', '-'], enforced)).toBe('policy require-cost-center version 2 saved (mode enforce)\n');

    const syntax = await file('syntax.yaml', `name: broken\nactions: [push]\ndeny: '"cost-center" in artifact.annotations &&'\n`);
    expect(await fails(['policy', 'apply', '-f', syntax])).toMatch(/^custody: deny: .+ \(line 1, column \d+\)$/);
    const field = await file('field.yaml', `name: broken\nactions: [push]\ndeny: 'artifact.lables["x"] == "y"'\n`);
    expect(await fails(['policy', 'apply', '-f', field])).toMatch(/^custody: deny: .*lables/);
    expect(await fails(['policy', 'apply', '-f', await file('mode.yaml', 'name: broken\nactions: [push]\nmode: sometimes\ndeny: "true"\n')])).toBe(
      'custody: mode: mode is enforce, audit or dry-run',
    );
    expect(await fails(['policy', 'show', 'broken'])).toBe('custody: no policy broken');

    // what the CLI must read itself to know where to send the policy
    const nameless = await file('nameless.yaml', 'actions: [push]\ndeny: "true"\n');
    expect(await fails(['policy', 'apply', '-f', nameless])).toBe(
      `custody: ${nameless} names no policy: a policy document has a name field, e.g. name: require-cost-center`,
    );
    expect(await fails(['policy', 'apply', '-f', '-'], '{ name: [')).toMatch(/^custody: stdin is not valid YAML or JSON: /);
    expect(await fails(['policy', 'apply', '-f', path.join(home, 'missing.yaml')])).toMatch(/^custody: cannot read .*missing\.yaml: ENOENT/);
  });

  it('lists, shows the source as applied and its versions, and deletes', async () => {
    const list = await ok(['policy', 'list']);
    expect(list.split('\n')[0]).toMatch(/^NAME\s+VERSION\s+NAMESPACE\s+ENGINE\s+MODE\s+ACTIONS\s+SAVED\s+BY\s+DESCRIPTION$/);
    expect(list).toMatch(/\nrequire-cost-center\s+2\s+\(registry\)\s+cel\s+enforce\s+push\s+\d{4}-\S+\s+admin\s+every push names who pays for it\n/);

    const shown = await custody(['policy', 'show', 'require-cost-center']);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toBe(enforced); // comment and all, so it can be applied again
    expect(shown.stderr).toMatch(/^# policy require-cost-center version 2, saved by admin at \d{4}-\S+\n$/);
    expect(await ok(['policy', 'show', 'require-cost-center', '--version', '1'])).toBe(costCenter('dry-run'));
    expect(JSON.parse(await ok(['policy', 'show', 'require-cost-center', '--json']))).toMatchObject({ name: 'require-cost-center', version: 2 });
    const versions = await ok(['policy', 'show', 'require-cost-center', '--versions']);
    expect(versions).toMatch(/^VERSION\s+MODE\s+SAVED\s+BY\s+CHANGE\n2\s+enforce\s+\S+\s+admin\s+changed\n1\s+dry-run\s+\S+\s+admin\s+created\n$/);
    expect(await fails(['policy', 'show', 'require-cost-center', '--version', 'two'])).toBe('custody: two is not a whole number');

    expect(await ok(['policy', 'apply', '-f', await file('scratch.json', '{"name": "scratch", "actions": ["delete"], "deny": "false"}')])).toBe(
      'policy scratch version 1 saved (mode enforce)\n',
    );
    expect(await ok(['policy', 'delete', 'scratch'])).toBe('deleted policy scratch\n');
    expect(await fails(['policy', 'delete', 'scratch'])).toBe('custody: no policy scratch');
    expect(await fails(['policy', 'show', 'scratch'])).toBe('custody: no policy scratch');
    expect(await ok(['policy', 'show', 'scratch', '--versions'])).toMatch(/\n2\s+enforce\s+\S+\s+admin\s+deleted\n1\s+/);
    const names = (JSON.parse(await ok(['policy', 'list', '--json'])) as { policies: { name: string }[] }).policies.map((p) => p.name);
    expect(names).toEqual(['require-cost-center']);
  });

  it('tests a policy on a stored artifact, by tag or digest, and on an input document', async () => {
    const policy = await file('enforce.yaml', enforced);
    expect(await ok(['policy', 'test', '-f', policy, '--artifact', 'team/app:v1', '--action', 'push'])).toBe(`deny: ${refusal}\n`);
    expect(await ok(['policy', 'test', '-f', policy, '--artifact', 'team/app:paid', '--action', 'push'])).toBe('allow\n');
    expect(await ok(['policy', 'test', '-f', policy, '--artifact', `team/app@${unpaidDigest}`, '--action', 'push'])).toBe(`deny: ${refusal}\n`);
    const shown = await ok(['policy', 'test', '-f', policy, '--artifact', 'team/app:v1', '--action', 'push', '--show-input']);
    const [verdict, input] = shown.split('\n\n', 2) as [string, string];
    expect(verdict).toBe(`deny: ${refusal}`);
    expect(JSON.parse(input)).toMatchObject({ action: 'push', artifact: { repository: 'team/app', tag: 'v1', digest: unpaidDigest } });

    // the input of a stored artifact, edited, decided on again
    const tested = JSON.parse(await ok(['policy', 'test', '-f', policy, '--artifact', 'team/app:v1', '--action', 'push', '--json'])) as {
      deny: boolean;
      input: { artifact: { annotations: Record<string, string> } };
    };
    expect(tested.deny).toBe(true);
    const document = tested.input;
    expect(await ok(['policy', 'test', '-f', policy, '--input', await file('unpaid.json', JSON.stringify(document))])).toBe(`deny: ${refusal}\n`);
    document.artifact.annotations['cost-center'] = 'cc-7';
    expect(await ok(['policy', 'test', '-f', policy, '--input', await file('paid.json', JSON.stringify(document))])).toBe('allow\n');
    // and the policy from stdin
    expect(await ok(['policy', 'test', '-f', '-', '--input', path.join(home, 'paid.json')], enforced)).toBe('allow\n');

    expect(await fails(['policy', 'test', '-f', policy])).toBe('custody: give either --input FILE or --artifact REPOSITORY:TAG');
    expect(await fails(['policy', 'test', '-f', policy, '--artifact', 'team/app'])).toBe(
      'custody: give --artifact as REPOSITORY:TAG or REPOSITORY@DIGEST, e.g. team/app:v1, not team/app',
    );
    expect(await fails(['policy', 'test', '-f', policy, '--artifact', 'team/app:nope'])).toBe('custody: no manifest nope in repository team/app');
    expect(await fails(['policy', 'test', '-f', policy, '--input', await file('bad.json', '{"artifact": ')])).toMatch(/^custody: .*bad\.json is not JSON: /);
    expect(await fails(['policy', 'test', '-f', policy, '--artifact', 'team/app:v1', '--action', 'copy'])).toMatch(/^custody: invalid policy test \(action\)/);
  });

  it('simulates against the stored artifacts and the recorded inputs, and decides nothing', async () => {
    const policy = await file('enforce.yaml', enforced);
    type Simulation = {
      artifacts: { evaluated: number };
      recorded: { evaluated: number; denied: { identity: string; reference: string }[] };
      errors: unknown[];
    };
    // the two pushes of beforeAll are recorded once the service writes its batch
    const s = await eventually<Simulation>(['policy', 'simulate', '-f', policy, '--days', '1'], (v) => v.recorded.evaluated >= 2);
    expect(s.artifacts.evaluated).toBe(2);
    expect(s.recorded.evaluated).toBe(2);
    expect(s.recorded.denied).toEqual([expect.objectContaining({ identity: 'admin', reference: 'v1' })]);

    const text = await ok(['policy', 'simulate', '-f', policy, '--days', '1']);
    expect(text).toContain('policy require-cost-center, simulated; it decided nothing\n');
    expect(text).toContain('stored artifacts: 2 evaluated, 1 would be denied\n');
    expect(text).toMatch(new RegExp(`\\npush\\s+team/app\\s+v1\\s+${unpaidDigest.slice(0, 19)}\\s+${refusal}\\n`));
    expect(text).toContain('recorded inputs of the last day: 2 evaluated, 1 would be denied\n');
    expect(text).toMatch(new RegExp(`\\npush\\s+team/app\\s+v1\\s+admin\\s+\\d{4}-\\S+\\s+${refusal}\\n`));
    expect(text).toMatch(/\nerrors: 0$/m);

    // a policy that is not saved: simulating it neither saves it nor logs its decisions (checked below, once later decisions are logged)
    const everything = await file('everything.yaml', `name: sim-only\nactions: [push, pull]\ndeny: 'true'\n`);
    expect(await ok(['policy', 'simulate', '-f', everything])).toContain('stored artifacts: 4 evaluated, 4 would be denied\n');
    expect(await fails(['policy', 'show', 'sim-only'])).toBe('custody: no policy sim-only');

    const limited = JSON.parse(await ok(['policy', 'simulate', '-f', policy, '--limit', '1', '--json'])) as Simulation;
    expect(limited.artifacts.evaluated).toBe(1);
    expect(await fails(['policy', 'simulate', '-f', policy, '--days', 'week'])).toBe('custody: week is not a whole number');
    expect(await fails(['policy', 'simulate', '-f', await file('syntax2.yaml', `name: x\nactions: [push]\ndeny: 'artifact.size >'\n`)])).toMatch(
      /^custody: deny: .+ \(line 1, column \d+\)$/,
    );
  });

  it('logs a denied push, and finds it with filters and pages', async () => {
    // require-cost-center version 2 is in force since the apply test
    const denied = await imageManifest(server.url, 'team/app', ['layer-v2']);
    const refused = await putManifest(server.url, 'team/app', 'v2', denied.body);
    expect(refused.status).toBe(403);
    expect(refused.json<{ errors: { message: string }[] }>().errors[0]?.message).toBe(refusal);
    const other = await imageManifest(server.url, 'team/other', ['layer-other']);
    expect((await putManifest(server.url, 'team/other', 'v1', other.body)).status).toBe(403);

    type Page = { decisions: { repository: string; reference: string }[]; next?: string };
    const both = await eventually<Page>(['policy', 'decisions', '--policy', 'require-cost-center', '--result', 'deny'], (p) => p.decisions.length >= 2);
    expect(both.decisions.map((d) => `${d.repository}:${d.reference}`)).toEqual(['team/other:v1', 'team/app:v2']);

    const table = await ok(['policy', 'decisions', '--result', 'deny', '--repository', 'team/app']);
    expect(table.split('\n')[0]).toMatch(/^AT\s+POLICY\s+MODE\s+ACTION\s+REPOSITORY\s+REFERENCE\s+RESULT\s+ENFORCED\s+ACTOR\s+MESSAGE$/);
    expect(table).toMatch(
      new RegExp(`^\\d{4}-\\S+\\s+require-cost-center v2\\s+enforce\\s+push\\s+team/app\\s+v2\\s+deny\\s+yes\\s+admin\\s+${refusal}$`, 'm'),
    );
    expect(table.trim().split('\n')).toHaveLength(2);

    const count = async (...filter: string[]) => (JSON.parse(await ok(['policy', 'decisions', ...filter, '--json'])) as Page).decisions.length;
    expect(await count('--namespace', 'team', '--since', '1h')).toBe(2);
    expect(await count('--action', 'push', '--since', new Date(Date.now() - 3_600_000).toISOString())).toBe(2);
    expect(await count('--until', '1h')).toBe(0);
    expect(await count('--action', 'pull')).toBe(0);
    expect(await count('--repository', 'team/elsewhere')).toBe(0);
    // the decisions above were logged after the simulation, so its would have been too
    expect(await count('--policy', 'sim-only')).toBe(0);
    expect(await ok(['policy', 'decisions', '--result', 'allow'])).toBe('no decisions\n');

    // one per page: the first page says how to go on, --all goes on
    const first = await custody(['policy', 'decisions', '--policy', 'require-cost-center', '--limit', '1']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/team\/other\s+v1\s+deny/);
    const cursor = /^more: add --before (\S+), or --all\n$/.exec(first.stderr)?.[1];
    expect(cursor).toBeDefined();
    expect(await ok(['policy', 'decisions', '--policy', 'require-cost-center', '--limit', '1', '--before', cursor as string])).toMatch(/team\/app\s+v2\s+deny/);
    const all = JSON.parse(await ok(['policy', 'decisions', '--policy', 'require-cost-center', '--limit', '1', '--all', '--json'])) as Page;
    expect(all.decisions.map((d) => d.repository)).toEqual(['team/other', 'team/app']);
    expect(all.next).toBeUndefined();

    expect(await fails(['policy', 'decisions', '--since', 'yesterday'])).toMatch(/^custody: invalid query \(since\)/);
    expect(await fails(['policy', 'decisions', '--result', 'maybe'])).toMatch(/^custody: invalid query \(result\)/);
  });
});

describe('custody namespace set: what policies read', () => {
  it('sets a quota and labels, changes one label and keeps the rest', async () => {
    expect(await ok(['namespace', 'set', 'team', '--quota', '10GiB', '--label', 'tier=prod', '--label', 'cost-center=cc-1'])).toBe(
      'namespace team: anonymous read off, quota 10 GiB (10737418240 bytes), labels tier=prod, cost-center=cc-1\n',
    );
    expect(await ok(['namespace', 'set', 'team', '--label', 'tier-', '--label', 'owner=ops'])).toBe(
      'namespace team: anonymous read off, quota 10 GiB (10737418240 bytes), labels cost-center=cc-1, owner=ops\n',
    );
    const shown = await ok(['namespace', 'show', 'team']);
    expect(shown).toContain('\nquota:          10 GiB (10737418240 bytes)\n');
    expect(shown).toContain('\nlabels:         cost-center=cc-1, owner=ops\n');
    // and a policy sees them
    const tested = JSON.parse(await ok(['policy', 'test', '-f', path.join(home, 'enforce.yaml'), '--artifact', 'team/app:paid', '--json'])) as {
      input: { ns: { quotaBytes: number; labels: Record<string, string> } };
    };
    expect(tested.input.ns).toMatchObject({ quotaBytes: 10737418240, labels: { 'cost-center': 'cc-1', owner: 'ops' } });
    expect(await ok(['namespace', 'set', 'team', '--quota', '0'])).toBe('namespace team: anonymous read off, labels cost-center=cc-1, owner=ops\n');

    expect(await fails(['namespace', 'set', 'team', '--quota', '10 parsecs'])).toBe(
      'custody: give a size in bytes or with a unit (KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 10GiB, not 10 parsecs',
    );
    expect(await fails(['namespace', 'set', 'team', '--label', '=x'])).toBe('custody: give --label as KEY=VALUE, or KEY- to remove it, not =x');
    expect(await fails(['namespace', 'set', 'team', '--label', 'Bad Key=x'])).toMatch(/^custody: invalid namespace settings \(labels/);
  });
});

describe('the CLI parsers', () => {
  it('reads sizes, artifact references and relative times', () => {
    expect(byteSize('1073741824')).toBe(2 ** 30);
    expect(byteSize('1.5GiB')).toBe(1.5 * 2 ** 30);
    expect(byteSize('500MB')).toBe(500_000_000);
    expect(byteSize('0.1gb')).toBe(100_000_000);
    expect(() => byteSize('1.5')).toThrow(/give a size/);
    expect(() => byteSize('-1GiB')).toThrow(/give a size/);
    expect(artifactRef('team/sub/app:v1')).toEqual({ repository: 'team/sub/app', reference: 'v1' });
    expect(artifactRef('team/app@sha256:abc')).toEqual({ repository: 'team/app', reference: 'sha256:abc' });
    expect(() => artifactRef('team/app:')).toThrow(/REPOSITORY:TAG/);
    const now = Date.parse('2026-01-31T12:00:00Z');
    expect(when('7d', now)).toBe('2026-01-24T12:00:00.000Z');
    expect(when('90m', now)).toBe('2026-01-31T10:30:00.000Z');
    expect(when('2026-01-01T00:00:00Z', now)).toBe('2026-01-01T00:00:00Z');
  });
});
