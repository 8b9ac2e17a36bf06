/**
 * The example policies of docs/examples/policies/, each saved as an operator would save it and
 * exercised through /v2 with the artifacts it is about: labelled and unlabelled images, a
 * namespace near its quota, an SBOM with a forbidden license, Wasm components built at test
 * time, release tags deleted in and out of the window, signed and unsigned pulls. Every built
 * input is also checked against the published JSON Schema. Answered through inject().
 */
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { componentEmbed, componentNew } from '@bytecodealliance/jco-transpile/wasm-tools';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inputSchema } from '../src/policy/input-schema.ts';
import { startWithAccounts, type AccountsServer } from './helpers/accounts.ts';
import { descriptorOf, imageManifest, pushBlob, putManifest, request, sha256, types, type Reply } from './helpers/http.ts';
import { projectRoot } from './helpers/server.ts';
import { newKey, pushCosignSignature, pushSbom, putTrust, settledArtifact } from './helpers/signing.ts';

const examples = path.join(projectRoot, 'docs/examples/policies');
const example = (name: string) => readFile(path.join(examples, `${name}.yaml`), 'utf8');

let server: AccountsServer;
let clock = Date.parse('2026-12-02T12:00:00Z');
const validInput = new Ajv2020({ strict: true, allErrors: true }).compile(inputSchema);

beforeAll(async () => {
  server = await startWithAccounts({ policy: { reloadSeconds: 3600 } }, { now: () => clock }, { listen: false });
});
afterAll(() => server.stop());

const json = (body: unknown) => ({ body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
const ociMessage = (r: Reply) => r.json<{ errors: { message: string }[] }>().errors[0]?.message;

async function apply(source: string): Promise<string> {
  const name = /^name: (\S+)$/m.exec(source)?.[1] ?? '';
  const r = await request(server.url, `/api/v1/policies/${name}`, { method: 'PUT', ...json({ source }) });
  expect(r.status, r.body.toString()).toBe(201);
  return name;
}
const remove = (name: string) => request(server.url, `/api/v1/policies/${name}`, { method: 'DELETE' });

/** The input a policy would see for a stored artifact, checked against the published schema. */
async function inputFor(repository: string, reference: string, action = 'pull'): Promise<Record<string, unknown>> {
  const policy = { source: 'name: probe\nactions: [pull]\ndeny: "false"' };
  const r = await request(server.url, '/api/v1/policies/test', { method: 'POST', ...json({ policy, artifact: { repository, reference }, action }) });
  expect(r.status).toBe(200);
  const input = r.json<{ input: Record<string, unknown> }>().input;
  expect(validInput(input), JSON.stringify(validInput.errors)).toBe(true);
  return input;
}

/** An image whose config carries these labels. */
async function labelledImage(repo: string, labels: Record<string, string>): Promise<{ body: string; digest: string }> {
  const config = JSON.stringify({
    architecture: 'arm64',
    os: 'linux',
    config: { Labels: labels },
    created: '2026-11-30T08:00:00Z',
    rootfs: { type: 'layers', diff_ids: [] },
  });
  const layer = 'a layer';
  await pushBlob(server.url, repo, config);
  await pushBlob(server.url, repo, layer);
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: types.manifest,
    config: descriptorOf(config, types.config),
    layers: [descriptorOf(layer, types.layer)],
  });
  return { body, digest: sha256(body) };
}

describe('the example policies', () => {
  it('are all here, and every one of them is a valid policy', async () => {
    const files = (await readdir(examples)).filter((f) => f.endsWith('.yaml')).sort();
    expect(files).toEqual([
      'forbidden-licenses.yaml',
      'namespace-quota.yaml',
      'no-wasi-sockets.yaml',
      'prod-signed-by-release.yaml',
      'release-tags-maintenance-window.yaml',
      'require-cost-center.yaml',
    ]);
    for (const file of files) {
      const source = await readFile(path.join(examples, file), 'utf8');
      const r = await request(server.url, '/api/v1/policies/test', { method: 'POST', ...json({ policy: { source }, input: {}, action: 'pull' }) });
      expect(r.status, `${file}: ${r.body.toString()}`).toBe(200);
    }
  });

  it('require-cost-center: denies a push without the label, allows one with it in the config or as an annotation', async () => {
    const name = await apply(await example('require-cost-center'));
    try {
      const bare = await imageManifest(server.url, 'cc/app');
      const refused = await putManifest(server.url, 'cc/app', 'v1', bare.body);
      expect(refused.status).toBe(403);
      expect(ociMessage(refused)).toBe('pushes to cc/app need a cost-center label or annotation');
      const labelled = await labelledImage('cc/app', { 'cost-center': 'cc-7', team: 'payments' });
      expect((await putManifest(server.url, 'cc/app', 'v1', labelled.body)).status).toBe(201);
      const annotated = await imageManifest(server.url, 'cc/app', ['other'], { annotations: { 'cost-center': 'cc-8' } });
      expect((await putManifest(server.url, 'cc/app', 'v2', annotated.body)).status).toBe(201);
    } finally {
      await remove(name);
    }
    const input = await inputFor('cc/app', 'v1');
    expect(input.artifact).toMatchObject({
      labels: { 'cost-center': 'cc-7', team: 'payments' },
      created: '2026-11-30T08:00:00Z',
      platforms: [{ os: 'linux', architecture: 'arm64', variant: '' }],
    });
  });

  it('namespace-quota: denies the push that takes the namespace over its quota', async () => {
    const name = await apply(await example('namespace-quota'));
    try {
      const first = await imageManifest(server.url, 'small/app', ['x'.repeat(500)]);
      expect((await putManifest(server.url, 'small/app', 'v1', first.body)).status).toBe(201);
      const second = await imageManifest(server.url, 'small/app', ['y'.repeat(2000)]);
      // set once the layers are in: the hard quota itself would refuse them (docs/lifecycle.md),
      // and at the manifest the policy is asked before the quota is
      expect((await request(server.url, '/api/v1/namespaces/small', { method: 'PUT', ...json({ quotaBytes: 2000 }) })).status).toBe(200);
      const refused = await putManifest(server.url, 'small/app', 'v2', second.body);
      expect(refused.status).toBe(403);
      expect(ociMessage(refused)).toMatch(/^small holds \d+ bytes, over its quota of 2000$/);
    } finally {
      await remove(name);
    }
  });

  it('forbidden-licenses: denies pulls once the SBOM lists an AGPL component', async () => {
    const clean = await imageManifest(server.url, 'lic/clean');
    expect((await putManifest(server.url, 'lic/clean', 'v1', clean.body)).status).toBe(201);
    const tainted = await imageManifest(server.url, 'lic/tainted');
    expect((await putManifest(server.url, 'lic/tainted', 'v1', tainted.body)).status).toBe(201);
    const subject = (m: { body: string }) => descriptorOf(m.body, types.manifest);
    await pushSbom(server.url, 'lic/clean', subject(clean), [{ name: 'express', version: '4.21.0', license: 'MIT' }]);
    await pushSbom(server.url, 'lic/tainted', subject(tainted), [
      { name: 'express', version: '4.21.0', license: 'MIT' },
      { name: 'ghostscript', version: '10.0', license: 'AGPL-3.0-only' },
    ]);
    await settledArtifact(server.url, 'lic/clean', clean.digest);
    await settledArtifact(server.url, 'lic/tainted', tainted.digest);
    const name = await apply(await example('forbidden-licenses'));
    try {
      expect((await request(server.url, '/v2/lic/clean/manifests/v1')).status).toBe(200);
      const refused = await request(server.url, '/v2/lic/tainted/manifests/v1');
      expect(refused.status).toBe(403);
      expect(ociMessage(refused)).toBe('lic/tainted lists a component under a forbidden license; see its SBOM');
    } finally {
      await remove(name);
    }
    const input = await inputFor('lic/tainted', 'v1');
    expect(input.trust).toMatchObject({ sbom: { present: true, format: 'cyclonedx', componentCount: 2, licenses: ['MIT', 'AGPL-3.0-only'] } });
  });

  it('no-wasi-sockets: denies a Wasm component that imports wasi:sockets, allows one that does not', async () => {
    const wasi = `package wasi:sockets@0.2.0 { interface network { type error-code = u32; } interface tcp { use network.{error-code}; connect: func(port: u16) -> result<_, error-code>; } }
package wasi:cli@0.2.0 { interface environment { get-environment: func() -> list<tuple<string, string>>; } }`;
    const component = async (imports: string[]) =>
      Buffer.from(
        await componentNew(
          await componentEmbed({
            dummy: true,
            witSource: `package test:app;\nworld app {\n${imports.map((i) => `  import ${i};`).join('\n')}\n}\n${wasi}`,
            world: 'app',
          }),
        ),
      );
    const push = async (tag: string, wasm: Buffer) => {
      await pushBlob(server.url, 'wasm/app', wasm);
      const config = '{}';
      await pushBlob(server.url, 'wasm/app', config);
      const body = JSON.stringify({
        schemaVersion: 2,
        mediaType: types.manifest,
        artifactType: 'application/vnd.wasm.component.v1+wasm',
        config: descriptorOf(config, types.empty),
        layers: [descriptorOf(wasm.toString('latin1'), 'application/wasm', { digest: sha256(wasm), size: wasm.length })],
      });
      return putManifest(server.url, 'wasm/app', tag, body);
    };
    const name = await apply(await example('no-wasi-sockets'));
    try {
      expect((await push('quiet', await component(['wasi:cli/environment@0.2.0']))).status).toBe(201);
      const refused = await push('chatty', await component(['wasi:cli/environment@0.2.0', 'wasi:sockets/tcp@0.2.0']));
      expect(refused.status).toBe(403);
      expect(ociMessage(refused)).toMatch(/^Wasm components may not import wasi:sockets \(wasm\/app imports \[.*"wasi:sockets\/tcp@0\.2\.0".*\]\)$/);
      // a component cut short cannot be read whole, and is refused rather than let through unread
      const whole = await component(['wasi:cli/environment@0.2.0']);
      expect((await push('cut', whole.subarray(0, 40))).status).toBe(403);
    } finally {
      await remove(name);
    }
    const input = await inputFor('wasm/app', 'quiet');
    expect(input.artifact).toMatchObject({ wasm: { component: true, complete: true, imports: ['wasi:cli/environment@0.2.0'] } });
  });

  it('release-tags-maintenance-window: denies deleting v* tags outside 02:00-04:00 UTC', async () => {
    const image = await imageManifest(server.url, 'win/app');
    for (const tag of ['v1.0', 'v1.1', 'nightly']) expect((await putManifest(server.url, 'win/app', tag, image.body)).status).toBe(201);
    const name = await apply(await example('release-tags-maintenance-window'));
    try {
      clock = Date.parse('2026-12-02T14:00:00Z');
      const refused = await request(server.url, '/v2/win/app/manifests/v1.0', { method: 'DELETE' });
      expect(refused.status).toBe(403);
      expect(ociMessage(refused)).toBe('release tags such as v1.0 are deleted only between 02:00 and 04:00 UTC');
      expect((await request(server.url, '/v2/win/app/manifests/nightly', { method: 'DELETE' })).status).toBe(202);
      clock = Date.parse('2026-12-03T02:30:00Z');
      expect((await request(server.url, '/v2/win/app/manifests/v1.0', { method: 'DELETE' })).status).toBe(202);
    } finally {
      clock = Date.parse('2026-12-02T12:00:00Z');
      await remove(name);
    }
  });

  it('prod-signed-by-release: pulls from prod need a verified signature by the named signer', async () => {
    // The example names a keyless identity (a GitHub workflow); here the namespace trusts a key,
    // so the same policy names that key's signer (key:release) instead.
    const source = (await example('prod-signed-by-release'))
      .replace(/deny: >-[\s\S]*?\nmessage:/, `deny: '!trust.signatures.exists(s, s.verified && s.signer == "key:release")'\nmessage:`)
      .replace('name: prod-signed-by-release', 'name: prod-signed-by-key');
    const release = newKey();
    const stranger = newKey();
    expect((await putTrust(server.url, 'prod', { sigstore: { publicKeys: [{ name: 'release', pem: release.pem }] } })).status).toBe(200);
    const images: Record<string, { body: string; digest: string }> = {};
    for (const who of ['signed', 'stranger', 'unsigned']) {
      images[who] = await imageManifest(server.url, `prod/${who}`);
      expect((await putManifest(server.url, `prod/${who}`, 'v1', images[who].body)).status).toBe(201);
    }
    await pushCosignSignature(server.url, 'prod/signed', descriptorOf(images.signed!.body, types.manifest), release);
    await pushCosignSignature(server.url, 'prod/stranger', descriptorOf(images.stranger!.body, types.manifest), stranger);
    await settledArtifact(server.url, 'prod/signed', images.signed!.digest);
    await settledArtifact(server.url, 'prod/stranger', images.stranger!.digest);
    const name = await apply(source);
    try {
      expect((await request(server.url, '/v2/prod/signed/manifests/v1')).status).toBe(200);
      for (const who of ['stranger', 'unsigned']) {
        const refused = await request(server.url, `/v2/prod/${who}/manifests/v1`);
        expect(refused.status, who).toBe(403);
        expect(ociMessage(refused)).toBe(`prod/${who}@${images[who]!.digest} is not signed by the release pipeline`);
      }
    } finally {
      await remove(name);
    }
    const input = await inputFor('prod/signed', 'v1');
    expect(input.trust).toMatchObject({ signatures: [{ format: 'cosign', signer: 'key:release', issuer: '', verified: true, code: 'verified' }] });
  });
});
