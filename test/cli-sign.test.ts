/**
 * `custody sign` without cosign, along the recipe in docs/trust.md: a key pair made with
 * Debian's openssl, the public key put in the namespace trust with `custody trust set
 * --cosign-key`, an image pushed with skopeo, `custody sign`, and `custody artifact show`
 * saying verified. The server is the built `custody serve`, the CLI the built bin, each its own
 * process.
 */
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, runCli, runOnTerminal } from './helpers/cli.ts';
import { haveClient, run } from './helpers/clients.ts';
import { descriptorOf, imageManifest, putManifest, request, testAdmin, types } from './helpers/http.ts';
import { imageLayout } from './helpers/layout.ts';
import { startProcess, tempDir, type ProcessServer } from './helpers/server.ts';
import { cosignTypes, newKey, type ArtifactView } from './helpers/signing.ts';

const exec = promisify(execFile);

/** openssl answers `version`, not `--version`, so helpers/clients.ts cannot ask it. */
async function haveOpenssl(): Promise<boolean> {
  try {
    await exec('openssl', ['version']);
    return true;
  } catch {
    if (process.env.CI) throw new Error('openssl is required in CI (apt-get install openssl)');
    console.warn('SKIPPED custody sign tests: openssl is not installed (apt-get install openssl)');
    return false;
  }
}

const openssl = await haveOpenssl();
const skopeoThere = openssl && (await haveClient('skopeo'));

let server: ProcessServer;
let home: string;
const file = (name: string) => path.join(home, name);

async function ok(args: string[], input?: string): Promise<string> {
  const r = await runCli(home, args, input);
  expect(r.code, `custody ${args.join(' ')}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

async function fails(args: string[]): Promise<string> {
  const r = await runCli(home, args);
  expect(r.code, `custody ${args.join(' ')}\n${r.stdout}`).toBe(1);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  return r.stderr.trim();
}

/** `custody artifact show` until nothing attached is pending. */
async function shown(repo: string, digest: string): Promise<string> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const text = await ok(['artifact', 'show', repo, digest]);
    if (!/pending/.test(text)) return text;
    if (Date.now() > deadline) throw new Error(`still pending:\n${text}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe.runIf(openssl)('custody sign', () => {
  beforeAll(async () => {
    assertBuilt('sign');
    home = await tempDir('custody-sign-');
    server = await startProcess();
    // the recipe's first steps: a key pair, and the login
    await run('openssl', ['ecparam', '-genkey', '-name', 'prime256v1', '-noout', '-out', file('key.pem')]);
    await run('openssl', ['ec', '-in', file('key.pem'), '-pubout', '-out', file('key.pub')]);
    await ok(['login', server.url, '-u', 'admin', '--password-stdin'], testAdmin.password);
    await ok(['trust', 'set', 'team', '--cosign-key', `release=${file('key.pub')}`]);
  });
  afterAll(async () => {
    await server?.stop();
    if (home) await rm(home, { recursive: true, force: true });
  });

  it.runIf(skopeoThere)('signs an image skopeo pushed, and the registry verifies it: the recipe in docs/trust.md', async () => {
    const layout = file('layout');
    const image = await imageLayout(layout, 'latest');
    const auth = ['--dest-tls-verify=false', '--dest-creds', `${testAdmin.username}:${testAdmin.password}`];
    await run('skopeo', ['--insecure-policy', 'copy', ...auth, `oci:${layout}:latest`, `docker://${server.host}/team/app:1.0`]);

    const out = await ok(['sign', 'team/app:1.0', '--key', file('key.pem')]);
    expect(out).toMatch(
      new RegExp(
        `^signed team/app@${image.digest} \\(1\\.0\\): signature sha256:[0-9a-f]{64}\\nits verdict: custody artifact show team/app ${image.digest}\\n$`,
      ),
    );
    const view = await shown('team/app', image.digest);
    expect(view).toContain(`team/app@${image.digest} (1.0)`);
    expect(view).toContain('1 of 1 signatures verified');
    expect(view).toMatch(/\nsignature\s+cosign\s+yes\s+verified\s+key:release\s+signed with the configured key release/);
  });

  it('signs by digest, and pushes a cosign signature referrer: the simple-signing payload, its signature annotation, the subject', async () => {
    const { body, digest } = await imageManifest(server.url, 'team/svc', ['svc layer']);
    expect((await putManifest(server.url, 'team/svc', 'v2', body)).status).toBe(201);
    const signed = JSON.parse(await ok(['sign', `team/svc@${digest}`, '--key', file('key.pem'), '--json'])) as {
      signature: string;
      dockerReference: string;
      digest: string;
    };
    expect(signed).toMatchObject({ digest, dockerReference: `${server.host}/team/svc` });

    const manifest = JSON.parse(
      (await request(server.url, `/v2/team/svc/manifests/${signed.signature}`, { headers: { accept: types.manifest } })).body.toString(),
    ) as {
      artifactType: string;
      subject: unknown;
      config: { mediaType: string };
      layers: { mediaType: string; digest: string; annotations: Record<string, string> }[];
    };
    expect(manifest.artifactType).toBe(cosignTypes.artifactSig);
    expect(manifest.subject).toEqual(descriptorOf(body, types.manifest));
    expect(manifest.config.mediaType).toBe(types.empty);
    expect(manifest.layers).toHaveLength(1);
    expect(manifest.layers[0]?.mediaType).toBe(cosignTypes.simpleSigning);
    const payload = (await request(server.url, `/v2/team/svc/blobs/${manifest.layers[0]?.digest}`)).body.toString();
    expect(payload).toBe(
      JSON.stringify({
        critical: {
          identity: { 'docker-reference': `${server.host}/team/svc` },
          image: { 'docker-manifest-digest': digest },
          type: 'cosign container image signature',
        },
        optional: null,
      }),
    );
    expect(manifest.layers[0]?.annotations[cosignTypes.signatureAnnotation]).toMatch(/^[A-Za-z0-9+/]+=*$/);
    // the referrers API lists it
    const referrers = (await request(server.url, `/v2/team/svc/referrers/${digest}`)).json<{ manifests: { digest: string }[] }>();
    expect(referrers.manifests.map((m) => m.digest)).toEqual([signed.signature]);

    const artifact = (await request(server.url, `/api/v1/repositories/team/svc/artifacts/${digest}`)).json<ArtifactView>();
    expect(artifact.referrers.map((r) => r.digest)).toEqual([signed.signature]);
    expect(await shown('team/svc', digest)).toMatch(/\nsignature\s+cosign\s+yes\s+verified\s+key:release/);
    // and the full reference with the registry's host names the same image
    expect(await ok(['sign', `${server.host}/team/svc:v2`, '--key', file('key.pem')])).toMatch(new RegExp(`^signed team/svc@${digest} \\(v2\\)`));
  });

  it('a key the namespace does not trust gives a signature that is not verified', async () => {
    const other = newKey();
    await writeFile(file('other.pem'), other.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    const { body, digest } = await imageManifest(server.url, 'team/untrusted', ['untrusted layer']);
    expect((await putManifest(server.url, 'team/untrusted', 'v1', body)).status).toBe(201);
    await ok(['sign', 'team/untrusted:v1', '--key', file('other.pem')]);
    expect(await shown('team/untrusted', digest)).toMatch(/0 of 1 signatures verified[\s\S]*\nsignature\s+cosign\s+NO\s/);
  });

  it('signs with Ed25519 and RSA keys too', async () => {
    await run('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', file('ed.pem')]);
    await run('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', file('rsa.pem')]);
    for (const k of ['ed', 'rsa']) await run('openssl', ['pkey', '-in', file(`${k}.pem`), '-pubout', '-out', file(`${k}.pub`)]);
    await ok(['trust', 'set', 'kinds', '--cosign-key', `ed=${file('ed.pub')}`, '--cosign-key', `rsa=${file('rsa.pub')}`]);
    const { body, digest } = await imageManifest(server.url, 'kinds/app', ['kinds layer']);
    expect((await putManifest(server.url, 'kinds/app', 'v1', body)).status).toBe(201);
    for (const k of ['ed', 'rsa']) await ok(['sign', 'kinds/app:v1', '--key', file(`${k}.pem`)]);
    const view = await shown('kinds/app', digest);
    expect(view).toContain('2 of 2 signatures verified');
    expect(view).toMatch(/\nsignature\s+cosign\s+yes\s+verified\s+key:ed\s/);
    expect(view).toMatch(/\nsignature\s+cosign\s+yes\s+verified\s+key:rsa\s/);
  });

  it('says in one line what is wrong', async () => {
    const { body } = await imageManifest(server.url, 'team/errors', ['errors layer']);
    expect((await putManifest(server.url, 'team/errors', 'v1', body)).status).toBe(201);
    expect(await fails(['sign', 'team/errors', '--key', file('key.pem')])).toBe('custody: give a tag or a digest: team/errors:TAG or team/errors@sha256:…');
    expect(await fails(['sign', 'team/errors:nope', '--key', file('key.pem')])).toMatch(/^custody: .*(unknown|not found|no manifest)/i);
    expect(await fails(['sign', 'team/errors:v1', '--key', file('key.pub')])).toBe(
      `custody: ${file('key.pub')} is not a PEM private key (it is a public key: give the private one)`,
    );
    expect(await fails(['sign', 'team/errors:v1', '--key', file('missing.pem')])).toMatch(/^custody: cannot read .*missing\.pem/);
    expect(await fails(['sign', 'Team/Errors:v1', '--key', file('key.pem')])).toBe('custody: invalid repository name Team/Errors');
    expect(await fails(['sign', `team/errors@sha256:${'0'.repeat(12)}`, '--key', file('key.pem')])).toBe(
      `custody: invalid digest sha256:${'0'.repeat(12)}: use sha256:<64 hex digits>`,
    );
    await run('openssl', ['pkcs8', '-topk8', '-in', file('key.pem'), '-out', file('encrypted.pem'), '-passout', 'pass:secret-pass']);
    expect(await fails(['sign', 'team/errors:v1', '--key', file('encrypted.pem')])).toBe(
      `custody: ${file('encrypted.pem')} is encrypted: run custody sign on a terminal to type its passphrase`,
    );
    expect(await readFile(file('key.pem'), 'utf8')).toMatch(/BEGIN EC PRIVATE KEY/);
  });

  it('asks for the passphrase of an encrypted key on a terminal', async () => {
    const { body, digest } = await imageManifest(server.url, 'team/locked', ['locked layer']);
    expect((await putManifest(server.url, 'team/locked', 'v1', body)).status).toBe(201);
    await run('openssl', ['pkcs8', '-topk8', '-in', file('key.pem'), '-out', file('locked.pem'), '-passout', 'pass:locked-pass']);
    const wrong = await runOnTerminal(
      home,
      ['sign', 'team/locked:v1', '--key', file('locked.pem')],
      [{ prompt: `Passphrase for ${file('locked.pem')}: `, type: 'not-it' }],
    );
    expect(wrong.code).toBe(1);
    expect(wrong.output).toContain(`custody: wrong passphrase for ${file('locked.pem')}`);
    const right = await runOnTerminal(
      home,
      ['sign', 'team/locked:v1', '--key', file('locked.pem')],
      [{ prompt: `Passphrase for ${file('locked.pem')}: `, type: 'locked-pass' }],
    );
    expect(right.code, right.output).toBe(0);
    expect(right.output).not.toContain('locked-pass');
    expect(await shown('team/locked', digest)).toMatch(/\nsignature\s+cosign\s+yes\s+verified\s+key:release/);
  });

  it('needs a login', async () => {
    const away = await tempDir('custody-sign-away-');
    try {
      const r = await runCli(away, ['sign', 'team/app:1.0', '--key', file('key.pem')]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe('custody: not logged in: run custody login URL');
    } finally {
      await rm(away, { recursive: true, force: true });
    }
  });
});
