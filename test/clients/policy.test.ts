/**
 * Policies end to end (issue 13, "How to know it is right"), against the built server in its own
 * process: skopeo and podman pushes denied with the policy's message and allowed once the image
 * carries a cost-center label or annotation, pulls from prod refused unless a trusted release
 * identity signed the artifact (signatures from the trust fixtures), a policy in audit mode that
 * lets the push through and logs the denial, and hostile manifests and config blobs at /v2 that
 * get a 4xx or a clean decision, never a 5xx, while policies that read artifact.labels are active.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveClient, run } from '../helpers/clients.ts';
import { descriptorOf, pushBlob, putManifest, request, sha256, testAdmin, types, type Descriptor, type Reply } from '../helpers/http.ts';
import { imageLayout, type ImageExtras, type Written } from '../helpers/layout.ts';
import { startProcess, type ProcessServer } from '../helpers/server.ts';
import { newKey, pushCosignSignature, pushReferrer, putTrust, settledArtifact } from '../helpers/signing.ts';
import { bundleBytes, dsseBundle, fulcioIdentity, mockSigstore, rekorWitness, statementFor } from '../trust/sigstore-fixtures.ts';

const haveSkopeo = await haveClient('skopeo');
const havePodman = await haveClient('podman');

/** The issue's example policy, scoped to one namespace so it decides nothing else in this file. */
const costCenter = (name: string, namespace: string, mode: 'enforce' | 'audit') => `
name: ${name}
description: every push names who pays for it
scope: { namespaces: [${namespace}], repositories: ["**"] }
actions: [push]
mode: ${mode}
deny: '!("cost-center" in artifact.labels) && !("cost-center" in artifact.annotations)'
message: 'pushes to {{ request.repository }} need a cost-center label or annotation'
`;
const costMessage = (repository: string) => `pushes to ${repository} need a cost-center label or annotation`;

/** A client's exit status and output, whether it succeeded or not. */
interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}
function attempt(cmd: string, args: string[], env: Record<string, string>): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const errorOf = (r: Reply) => r.json<{ errors: { code: string; message: string }[] }>().errors[0];

describe('policies with real clients', () => {
  let server: ProcessServer;
  let work: string;
  const authFile = () => path.join(work, 'auth.json');
  const skopeoEnv = () => ({ REGISTRY_AUTH_FILE: authFile() });
  const skopeo = (...args: string[]) => run('skopeo', ['--insecure-policy', ...args], skopeoEnv());
  const trySkopeo = (...args: string[]) => attempt('skopeo', ['--insecure-policy', ...args], skopeoEnv());
  /** skopeo copy of an OCI layout to the registry (a push) */
  const push = (dir: string, tag: string, target: string) =>
    trySkopeo('copy', '--dest-tls-verify=false', `oci:${dir}:${tag}`, `docker://${server.host}/${target}`);
  /** skopeo copy from the registry to an OCI layout (a pull) */
  const pull = (source: string, dir: string) => trySkopeo('copy', '--src-tls-verify=false', `docker://${server.host}/${source}`, `oci:${dir}:pulled`);

  async function savePolicy(name: string, source: string): Promise<void> {
    const r = await request(server.url, `/api/v1/policies/${name}`, {
      method: 'PUT',
      body: JSON.stringify({ source }),
      headers: { 'content-type': 'application/json' },
    });
    expect([200, 201], r.body.toString()).toContain(r.status);
  }
  async function deletePolicy(name: string): Promise<void> {
    expect((await request(server.url, `/api/v1/policies/${name}`, { method: 'DELETE' })).status).toBe(204);
  }
  /** Polls the decision log until it holds `count` entries for `query` (it is written in batches, each second). */
  async function decisions(query: string, count: number): Promise<Record<string, unknown>[]> {
    for (let i = 0; ; i++) {
      const r = await request(server.url, `/api/v1/policy-decisions?${query}`);
      expect(r.status, r.body.toString()).toBe(200);
      const found = r.json<{ decisions: Record<string, unknown>[] }>().decisions;
      if (found.length >= count || i >= 100) return found;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  let layouts = 0;
  /** A fresh OCI layout holding one image (random layer bytes, so each has its own digest). */
  async function layout(extras: ImageExtras = {}): Promise<{ dir: string; manifest: Written }> {
    const dir = path.join(work, `layout-${++layouts}`);
    return { dir, manifest: await imageLayout(dir, 'v1', extras) };
  }
  const manifestDescriptor = (m: Written): Descriptor => ({ mediaType: types.manifest, digest: m.digest, size: m.size });

  type Logged = { msg?: string; level?: number; method?: string; url?: string; status?: number };
  /** The server's JSON log lines so far (complete lines only). */
  const serverLog = (): Logged[] =>
    server
      .output()
      .split('\n')
      .slice(0, -1)
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Logged);

  beforeAll(async () => {
    server = await startProcess();
    // lowercase: podman names an image it reads from an OCI layout after the layout's path
    work = path.join(tmpdir(), `custody-policy-${randomBytes(4).toString('hex')}`);
    await mkdir(work);
    if (haveSkopeo)
      expect(await skopeo('login', '--tls-verify=false', '-u', testAdmin.username, '-p', testAdmin.password, server.host)).toMatch(/Login Succeeded/);
  });
  afterAll(async () => {
    // Whatever the tests did, the server answered no request with a 5xx and logged no error.
    if (server) {
      const log = serverLog();
      expect(log.filter((e) => e.msg === 'request' && (e.status ?? 0) >= 500)).toEqual([]);
      expect(log.filter((e) => (e.level ?? 0) >= 50)).toEqual([]);
    }
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  describe.runIf(haveSkopeo)('skopeo', () => {
    it('a push without a cost-center is denied with the policy message; with the label, or the annotation, it is allowed', async () => {
      await savePolicy('require-cost-center', costCenter('require-cost-center', 'costs', 'enforce'));
      try {
        const plain = await layout();
        const refused = await push(plain.dir, 'v1', 'costs/app:v1');
        expect(refused.code, refused.stderr).not.toBe(0);
        // skopeo prints the registry's error: "writing manifest: uploading manifest v1 to …: denied: <message>"
        expect(refused.stderr).toContain(`denied: ${costMessage('costs/app')}`);
        expect((await request(server.url, '/v2/costs/app/manifests/v1')).status).toBe(404);
        expect((await request(server.url, `/v2/costs/app/manifests/${plain.manifest.digest}`)).status).toBe(404);

        const labelled = await layout({ labels: { 'cost-center': 'cc-42' } });
        const allowed = await push(labelled.dir, 'v1', 'costs/app:v1');
        expect(allowed.code, allowed.stderr).toBe(0);
        const stored = await request(server.url, '/v2/costs/app/manifests/v1', { headers: { accept: types.manifest } });
        expect(stored.headers['docker-content-digest']).toBe(labelled.manifest.digest);

        const annotated = await layout({ annotations: { 'cost-center': 'cc-7' } });
        const alsoAllowed = await push(annotated.dir, 'v1', 'costs/app:annotated');
        expect(alsoAllowed.code, alsoAllowed.stderr).toBe(0);
        const byAnnotation = await request(server.url, '/v2/costs/app/manifests/annotated', { headers: { accept: types.manifest } });
        expect(byAnnotation.headers['docker-content-digest']).toBe(annotated.manifest.digest);

        // the one denial is in the decision log (allowed enforce decisions are not logged)
        const denied = await decisions('policy=require-cost-center&result=deny', 1);
        expect(denied).toHaveLength(1);
        expect(denied[0]).toMatchObject({
          policy: 'require-cost-center',
          mode: 'enforce',
          action: 'push',
          repository: 'costs/app',
          reference: 'v1',
          result: 'deny',
          enforced: true,
          actor: 'admin',
          message: costMessage('costs/app'),
        });
      } finally {
        await deletePolicy('require-cost-center');
      }
    });

    it('pulls from prod only what the release identity signed: unsigned, untrusted and other signers are refused', async () => {
      const CI = 'https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0';
      const ISSUER = 'https://token.actions.githubusercontent.com';
      const sigstore = await mockSigstore();
      const release = newKey();
      const stranger = newKey();
      // prod trusts the release workflow (keyless) and a release key
      const trust = await putTrust(server.url, 'prod', {
        sigstore: { publicKeys: [{ name: 'release', pem: release.pem }], identities: [{ identity: CI, issuer: ISSUER }], trustedRoot: sigstore.root },
      });
      expect(trust.status, trust.body.toString()).toBe(200);
      const message = (digest: string) => `prod/app@${digest} is not signed by the release workflow`;
      await savePolicy(
        'prod-release-signed',
        `name: prod-release-signed
description: pull from prod only what the release workflow signed
scope: { namespaces: [prod] }
actions: [pull]
deny: '!trust.signatures.exists(s, s.verified && s.signer == "${CI}")'
message: '{{ artifact.repository }}@{{ artifact.digest }} is not signed by the release workflow'`,
      );
      try {
        // Each image pushed with skopeo (the pull policy does not decide pushes); the release one last.
        const images: Record<string, Written> = {};
        for (const name of ['unsigned', 'stranger', 'keyed', 'mallory', 'release']) {
          const l = await layout();
          const pushed = await push(l.dir, 'v1', `prod/app:${name}`);
          expect(pushed.code, pushed.stderr).toBe(0);
          images[name] = l.manifest;
        }
        const image = (name: string): Written => images[name] as Written;
        const bundleType = 'application/vnd.dev.sigstore.bundle.v0.3+json';
        const keyless = async (who: string, issuer: string, subject: Written) => {
          const identity = await fulcioIdentity(sigstore.ca, who, issuer);
          const statement = statementFor(subject.digest, 'https://sigstore.dev/cosign/sign/v1');
          const bundle = bundleBytes(await dsseBundle(identity.signer, [rekorWitness(sigstore.tlog)], statement));
          return pushReferrer(server.url, 'prod/app', manifestDescriptor(subject), { mediaType: bundleType, bytes: Buffer.from(bundle) }, bundleType);
        };
        await pushCosignSignature(server.url, 'prod/app', manifestDescriptor(image('stranger')), stranger);
        await pushCosignSignature(server.url, 'prod/app', manifestDescriptor(image('keyed')), release);
        await keyless('mallory@example.com', 'https://accounts.example.com', image('mallory'));
        await keyless(CI, ISSUER, image('release'));

        // Trust verifies off the request: wait for every verdict, and check it is the one each case is about.
        const verdict = async (name: string) => (await settledArtifact(server.url, 'prod/app', image(name).digest)).referrers[0];
        expect(await verdict('stranger')).toMatchObject({ verified: false, code: 'bad_signature' });
        expect(await verdict('keyed')).toMatchObject({ verified: true, signer: 'key:release' });
        expect(await verdict('mallory')).toMatchObject({ verified: false, code: 'untrusted_signer' });
        expect(await verdict('release')).toMatchObject({ verified: true, signer: `${CI} (issuer ${ISSUER})` });

        // The policy service caches an artifact's trust facts for ~2 s (src/policy/input.ts), from
        // when it first read them (the push): poll the release pull until its verdict counts.
        // Every other image was pushed before it, so their cached facts are older and gone too.
        for (let i = 0; ; i++) {
          const r = await request(server.url, '/v2/prod/app/manifests/release', { method: 'HEAD', headers: { accept: types.manifest } });
          if (r.status === 200) break;
          expect(r.status).toBe(403);
          if (i >= 100) throw new Error('the release-signed image was still refused 10 s after its verdict');
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        const back = path.join(work, 'prod-back');
        const pulled = await pull('prod/app:release', back);
        expect(pulled.code, pulled.stderr).toBe(0);
        const index = JSON.parse(await readFile(path.join(back, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
        expect(index.manifests[0]?.digest).toBe(image('release').digest);

        for (const name of ['unsigned', 'stranger', 'keyed', 'mallory']) {
          const refused = await pull(`prod/app:${name}`, path.join(work, `prod-${name}`));
          expect(refused.code, `${name}: ${refused.stderr}`).not.toBe(0);
          expect(refused.stderr, name).toContain(`denied: ${message(image(name).digest)}`);
          // by digest too: a pull policy decides at the manifest, however it is named
          const byDigest = await pull(`prod/app@${image(name).digest}`, path.join(work, `prod-${name}-digest`));
          expect(byDigest.code, `${name}: ${byDigest.stderr}`).not.toBe(0);
          expect(byDigest.stderr, name).toContain(`denied: ${message(image(name).digest)}`);
        }
      } finally {
        await deletePolicy('prod-release-signed');
      }
      // with the policy gone, the unsigned image is pulled again: it was the policy that refused it
      const after = await pull('prod/app:unsigned', path.join(work, 'prod-unsigned-after'));
      expect(after.code, after.stderr).toBe(0);
    });

    it('a policy in audit mode lets the push through and logs the denial', async () => {
      await savePolicy('audit-cost-center', costCenter('audit-cost-center', 'audited', 'audit'));
      try {
        const plain = await layout();
        const pushed = await push(plain.dir, 'v1', 'audited/app:v1');
        expect(pushed.code, pushed.stderr).toBe(0);
        const stored = await request(server.url, '/v2/audited/app/manifests/v1', { headers: { accept: types.manifest } });
        expect(stored.headers['docker-content-digest']).toBe(plain.manifest.digest);
        const logged = await decisions('policy=audit-cost-center', 1);
        expect(logged).toHaveLength(1);
        expect(logged[0]).toMatchObject({
          policy: 'audit-cost-center',
          mode: 'audit',
          action: 'push',
          repository: 'audited/app',
          reference: 'v1',
          result: 'deny',
          enforced: false,
          message: costMessage('audited/app'),
        });
      } finally {
        await deletePolicy('audit-cost-center');
      }
    });
  });

  describe.runIf(havePodman)('podman', () => {
    /** Separate storage for this run: nothing touches /var/lib/containers (as test/clients/podman.test.ts). */
    const podman = (...args: string[]) =>
      attempt(
        'podman',
        [
          ...['--root', path.join(work, 'podman', 'root'), '--runroot', path.join(work, 'podman', 'run'), '--storage-driver', 'vfs'],
          ...['--cgroup-manager', 'cgroupfs', '--events-backend', 'file', ...args],
        ],
        { XDG_RUNTIME_DIR: path.join(work, 'xdg'), REGISTRY_AUTH_FILE: authFile() },
      );
    /** podman pushes from its own storage only: the layout goes there first (`podman pull oci:DIR`), then `podman push` by image id. */
    async function podmanPush(dir: string, target: string): Promise<Outcome> {
      const loaded = await podman('pull', '--quiet', `oci:${dir}:v1`);
      expect(loaded.code, loaded.stderr).toBe(0);
      const id = loaded.stdout.trim().split('\n').at(-1) ?? '';
      expect(id).toMatch(/^[a-f0-9]{64}$/);
      return podman('push', '--tls-verify=false', id, `docker://${server.host}/${target}`);
    }

    beforeAll(async () => {
      const login = await podman('login', '--tls-verify=false', '-u', testAdmin.username, '-p', testAdmin.password, server.host);
      expect(login.code, login.stderr).toBe(0);
    });

    it('a podman push without a cost-center is denied with the policy message; with the label it is allowed', async () => {
      await savePolicy('podman-cost-center', costCenter('podman-cost-center', 'podcosts', 'enforce'));
      try {
        const plain = await layout();
        const refused = await podmanPush(plain.dir, 'podcosts/app:v1');
        expect(refused.code, refused.stderr).not.toBe(0);
        expect(refused.stderr).toContain(`denied: ${costMessage('podcosts/app')}`);
        expect((await request(server.url, '/v2/podcosts/app/manifests/v1')).status).toBe(404);

        const labelled = await layout({ labels: { 'cost-center': 'cc-42' } });
        const allowed = await podmanPush(labelled.dir, 'podcosts/app:v1');
        expect(allowed.code, allowed.stderr).toBe(0);
        // podman wrote its own manifest (it compresses the layer again); its config still carries the label
        const stored = await request(server.url, '/v2/podcosts/app/manifests/v1', {
          headers: { accept: `${types.manifest}, application/vnd.docker.distribution.manifest.v2+json` },
        });
        expect(stored.status).toBe(200);
        const config = stored.json<{ config: { digest: string } }>().config.digest;
        const image = (await request(server.url, `/v2/podcosts/app/blobs/${config}`)).json<{ config: { Labels?: Record<string, string> } }>();
        expect(image.config.Labels?.['cost-center']).toBe('cc-42');
        expect(await decisions('policy=podman-cost-center&result=deny', 1)).toHaveLength(1);
      } finally {
        await deletePolicy('podman-cost-center');
      }
    });
  });

  describe('hostile manifests at /v2 with policies reading artifact.labels', () => {
    const repo = 'hostile/app';
    const denied = costMessage(repo);
    /** what a hostile request may get: a 4xx with an OCI error, never a 5xx */
    const clean = (r: Reply, what: string) => {
      expect(r.status, `${what}: ${r.body.toString().slice(0, 300)}`).toBeGreaterThanOrEqual(400);
      expect(r.status, what).toBeLessThan(500);
    };
    /** A manifest naming `config` (pushed as a blob unless `pushConfig` is false) as its image config. */
    async function manifestWith(
      config: string | Buffer,
      options: { annotations?: Record<string, string>; size?: number; pushConfig?: boolean; mediaType?: string } = {},
    ): Promise<string> {
      if (options.pushConfig !== false) await pushBlob(server.url, repo, config);
      const layer = `layer ${++layouts}`;
      return JSON.stringify({
        schemaVersion: 2,
        mediaType: types.manifest,
        config: { mediaType: options.mediaType ?? types.config, digest: sha256(config), size: options.size ?? Buffer.byteLength(config) },
        layers: [{ mediaType: types.layer, digest: await pushBlob(server.url, repo, layer), size: Buffer.byteLength(layer) }],
        ...(options.annotations ? { annotations: options.annotations } : {}),
      });
    }

    beforeAll(async () => {
      await savePolicy('hostile-cost-center', costCenter('hostile-cost-center', 'hostile', 'enforce'));
      await savePolicy(
        'hostile-quarantine',
        `name: hostile-quarantine
scope: { namespaces: [hostile] }
actions: [pull]
deny: '"quarantine" in artifact.labels || artifact.labels.exists(k, k.startsWith("x-") && artifact.labels[k] == "")'
message: '{{ artifact.digest }} is quarantined'`,
      );
    });
    afterAll(async () => {
      await deletePolicy('hostile-cost-center');
      await deletePolicy('hostile-quarantine');
    });

    it('answers malformed manifest bodies MANIFEST_INVALID before any policy runs', async () => {
      const bodies: [string, string][] = [
        ['not JSON', '{"schemaVersion": 2, "mediaType": '],
        ['a JSON array', '[]'],
        ['a JSON string', '"manifest"'],
        ['config is a string', JSON.stringify({ schemaVersion: 2, mediaType: types.manifest, config: 'sha256:abc', layers: [] })],
        ['layers is an object', JSON.stringify({ schemaVersion: 2, mediaType: types.manifest, config: descriptorOf('{}', types.config), layers: {} })],
        [
          'config digest is a path',
          JSON.stringify({ schemaVersion: 2, mediaType: types.manifest, config: { mediaType: types.config, digest: 'sha256:../../x', size: 2 }, layers: [] }),
        ],
        ['nests 100 000 levels', `{"schemaVersion":2,"annotations":${'['.repeat(100_000)}${']'.repeat(100_000)}}`],
        ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]).toString('latin1')],
      ];
      for (const [what, body] of bodies) {
        const r = await putManifest(server.url, repo, 'bad', body);
        clean(r, what);
        expect(errorOf(r)?.code, what).toBe('MANIFEST_INVALID');
      }
      // none of them reached a policy: nothing was decided, so nothing was logged
      expect((await request(server.url, '/api/v1/policy-decisions?policy=hostile-cost-center')).json<{ decisions: unknown[] }>().decisions).toEqual([]);
    });

    it('decides cleanly on config blobs that are garbage, the wrong shape, deeply nested, huge or missing', async () => {
      const huge = JSON.stringify({ config: { Labels: { 'cost-center': 'cc-1', padding: 'x'.repeat(2 * 1024 * 1024) } } });
      const configs: [string, string | Buffer, Parameters<typeof manifestWith>[1]?][] = [
        ['garbage bytes', Buffer.from([0x00, 0xff, 0x13, 0x37, 0x7b, 0x7b])],
        ['not JSON', '{{{ not json'],
        ['JSON null', 'null'],
        ['a JSON array', '[1, 2, 3]'],
        ['a number', '42'],
        ['config is a string', JSON.stringify({ config: 'Labels' })],
        ['Labels is a string', JSON.stringify({ config: { Labels: 'cost-center' } })],
        ['Labels is a list', JSON.stringify({ config: { Labels: ['cost-center'] } })],
        ['a label that is not a string', JSON.stringify({ config: { Labels: { 'cost-center': 42 } } })],
        ['a label named constructor', JSON.stringify({ config: { Labels: { constructor: 'x' } } })],
        ['Labels nested 400 000 levels', `{"config":{"Labels":${'['.repeat(400_000)}${']'.repeat(400_000)}}}`],
        ['half a million values', `{"config":{"Labels":{"a":"b"}},"x":[${'0,'.repeat(500_000)}0]}`],
        // labels are read from configs of at most 1 MiB: a bigger one counts as having none
        ['2 MiB, with the label past the first MiB', huge],
        ['2 MiB, declared as 16 bytes', huge, { size: 16 }],
        ['declared as 2^53 bytes', JSON.stringify({ config: { Labels: { 'cost-center': 'cc' } } }), { size: Number.MAX_SAFE_INTEGER }],
        // the policy decides before the registry looks for the manifest's blobs
        ['never pushed', JSON.stringify({ config: { Labels: { 'cost-center': 'never pushed' } } }), { pushConfig: false }],
      ];
      for (const [what, config, options] of configs) {
        // no label was read from any of them, so the policy denies, with its own message (a failing policy would say so instead)
        const r = await putManifest(server.url, repo, 'hostile', await manifestWith(config, options));
        clean(r, what);
        expect(errorOf(r), what).toEqual({ code: 'DENIED', message: denied, detail: null });
        // the same config with the annotation: the policy reads the manifest as it should, and allows
        const annotated = await putManifest(server.url, repo, 'hostile', await manifestWith(config, { ...options, annotations: { 'cost-center': 'cc-2' } }));
        if (what === 'never pushed') expect(errorOf(annotated)?.code, what).toBe('MANIFEST_BLOB_UNKNOWN');
        else expect(annotated.status, `${what}: ${annotated.body.toString().slice(0, 300)}`).toBe(201);
      }
      // every denial is in the log as a decision (result deny), none as an evaluation error
      const log = await decisions('policy=hostile-cost-center', configs.length);
      expect(log.map((d) => d.result)).toEqual(configs.map(() => 'deny'));
      expect(log.every((d) => d.message === denied)).toBe(true);
      expect((await request(server.url, '/healthz', { auth: false })).status).toBe(200);
    });

    it('reads sound labels beside hostile ones, and decides pulls of garbage configs instead of failing', async () => {
      // "constructor" and "__proto__" are labels and annotations like any other, and hide nothing beside them
      const pushes: [string, string][] = [
        ['constructor', await manifestWith('{"config":{"Labels":{"__proto__":{"polluted":true},"constructor":"x","cost-center":"cc-9"}}}')],
        ['annotated', await manifestWith('{"config":{"Labels":{"constructor":"x"}}}', { annotations: { constructor: 'y', 'cost-center': 'cc-8' } })],
        ['garbage', await manifestWith('{{{ not json', { annotations: { 'cost-center': 'cc-3' } })],
        ['nested', await manifestWith(`{"config":{"Labels":${'['.repeat(400_000)}${']'.repeat(400_000)}}}`, { annotations: { 'cost-center': 'cc-4' } })],
      ];
      for (const [tag, body] of pushes) {
        const r = await putManifest(server.url, repo, tag, body);
        expect(r.status, `${tag}: ${r.body.toString().slice(0, 300)}`).toBe(201);
      }
      // the pull policy reads their labels and finds no quarantine
      for (const [tag, body] of pushes) {
        const r = await request(server.url, `/v2/${repo}/manifests/${tag}`, { headers: { accept: types.manifest } });
        expect(r.status, `${tag}: ${r.body.toString().slice(0, 300)}`).toBe(200);
        expect(r.body.toString()).toBe(body);
      }
      // and denies what it should, beside a "constructor" label too
      const quarantined = await manifestWith(JSON.stringify({ config: { Labels: { constructor: 'x', 'cost-center': 'cc', quarantine: 'yes' } } }));
      expect((await putManifest(server.url, repo, 'quarantined', quarantined)).status).toBe(201);
      const refused = await request(server.url, `/v2/${repo}/manifests/quarantined`, { headers: { accept: types.manifest } });
      expect(refused.status).toBe(403);
      expect(errorOf(refused)).toEqual({ code: 'DENIED', message: `${descriptorOf(quarantined, types.manifest).digest} is quarantined`, detail: null });
      const log = await decisions('policy=hostile-quarantine', 1);
      expect(log.map((d) => [d.result, d.reference])).toEqual([['deny', 'quarantined']]);
    });
  });
});
