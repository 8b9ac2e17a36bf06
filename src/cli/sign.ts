/**
 * `custody sign REF --key key.pem`: a cosign signature made without cosign. The manifest REF
 * resolves to is signed in cosign's "simple signing" form (the payload names its digest; the
 * signature, base64, is the layer's `dev.cosignproject.cosign/signature` annotation) and pushed
 * as an OCI 1.1 referrer, the way `cosign sign --registry-referrers-mode=oci-1-1` does, over /v2
 * with the stored login. The trust worker verifies it like any cosign signature (docs/trust.md).
 */
import { createHash, createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CliError, loggedIn, type Client } from './client.ts';
import { action, emit, withJson, type JsonOption } from './io.ts';
import { askSecret, interactive } from './prompt.ts';

export const cosign = {
  artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
  simpleSigning: 'application/vnd.dev.cosign.simplesigning.v1+json',
  signatureAnnotation: 'dev.cosignproject.cosign/signature',
};
const oci = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  empty: 'application/vnd.oci.empty.v1+json',
};
/** What a manifest may be: OCI and Docker, images and indexes. */
const manifestTypes = [
  oci.manifest,
  oci.index,
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
];

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface Reference {
  repository: string;
  tag?: string;
  digest?: string;
}

const repositoryName = /^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*$/;
const tagName = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const digestName = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/**
 * `team/app:1.0`, `team/app@sha256:…` (or both), optionally behind the logged-in registry's host
 * (`registry.example.com/team/app:1.0`, as docker names it). A tag is resolved once, here: the
 * signature covers the digest it names now.
 */
export function parseReference(raw: string, registryHost: string): Reference {
  let rest = raw.startsWith(`${registryHost}/`) ? raw.slice(registryHost.length + 1) : raw;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!digestName.test(digest)) throw new CliError(`invalid digest ${digest}: use sha256:<64 hex digits>`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagName.test(tag)) throw new CliError(`invalid tag ${tag}`);
  }
  if (!repositoryName.test(rest)) {
    const hint = rest.includes('/') && /[.:]/.test(rest.split('/')[0] ?? '') ? ` (you are logged in to ${registryHost}; sign images there)` : '';
    throw new CliError(`invalid repository name ${rest}${hint}`);
  }
  if (tag === undefined && digest === undefined) throw new CliError(`give a tag or a digest: ${rest}:TAG or ${rest}@sha256:…`);
  return { repository: rest, tag, digest };
}

/** cosign's simple-signing payload for a manifest digest, byte for byte as cosign writes it. */
export function simpleSigningPayload(dockerReference: string, digest: string): string {
  return JSON.stringify({
    critical: { identity: { 'docker-reference': dockerReference }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' },
    optional: null,
  });
}

const digestOf = (algorithm: string, bytes: Uint8Array) => `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;

/** The PEM private key (SEC1 or PKCS #8; an encrypted one asks for its passphrase on a terminal). */
export async function readSigningKey(file: string): Promise<{ key: KeyObject; hash: string | null }> {
  const pem = await readFile(file, 'utf8').catch((err: Error) => Promise.reject(new CliError(`cannot read ${file}: ${err.message}`)));
  if (/-----BEGIN ENCRYPTED (SIGSTORE|COSIGN) PRIVATE KEY-----/.test(pem)) {
    throw new CliError(
      `${file} is in cosign's own encrypted format, which custody sign does not read: sign with cosign, or make a PEM key with openssl (docs/trust.md)`,
    );
  }
  let key: KeyObject;
  // PKCS #8 (openssl pkcs8 -topk8) or the older PEM encryption (openssl ec -aes256)
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem)) {
    if (!interactive()) throw new CliError(`${file} is encrypted: run custody sign on a terminal to type its passphrase`);
    const passphrase = await askSecret(`Passphrase for ${file}: `);
    try {
      key = createPrivateKey({ key: pem, passphrase });
    } catch {
      throw new CliError(`wrong passphrase for ${file}`);
    }
  } else {
    try {
      key = createPrivateKey(pem);
    } catch {
      throw new CliError(`${file} is not a PEM private key${/PUBLIC KEY/.test(pem) ? ' (it is a public key: give the private one)' : ''}`);
    }
  }
  // the kinds of keys the verifier reads (src/trust/sigstore/keys.ts); cosign hashes with SHA-256
  const type = key.asymmetricKeyType;
  if (type === 'ec' || type === 'rsa') return { key, hash: 'sha256' };
  if (type === 'ed25519') return { key, hash: null };
  throw new CliError(`${file} is a ${type} key: use ECDSA (P-256), Ed25519 or RSA`);
}

/** The manifest a reference names: its descriptor, digest checked against the bytes. */
async function resolve(client: Client, ref: Reference): Promise<Descriptor> {
  const res = await client.send(`/v2/${ref.repository}/manifests/${ref.digest ?? ref.tag}`, { headers: { accept: manifestTypes.join(', ') } });
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (!res.ok) throw client.failure(res, Buffer.from(bytes).toString('utf8'));
  const algorithm = ref.digest?.split(':')[0] ?? 'sha256';
  const digest = digestOf(algorithm, bytes);
  if (ref.digest !== undefined && digest !== ref.digest)
    throw new CliError(`${client.url} answered ${ref.repository}@${ref.digest} with a manifest whose digest is ${digest}`);
  let mediaType = res.headers.get('content-type')?.split(';')[0]?.trim() ?? '';
  if (!manifestTypes.includes(mediaType)) {
    try {
      const declared = (JSON.parse(Buffer.from(bytes).toString('utf8')) as { mediaType?: unknown }).mediaType;
      mediaType = typeof declared === 'string' ? declared : '';
    } catch {
      mediaType = '';
    }
  }
  if (!manifestTypes.includes(mediaType))
    throw new CliError(`${ref.repository}:${ref.tag ?? ref.digest} is not an image manifest or index (${mediaType || 'no media type'})`);
  return { mediaType, digest, size: bytes.length };
}

/** Pushes a blob unless the repository has it: one POST with the digest, as the registry allows. */
async function pushBlob(client: Client, repository: string, mediaType: string, bytes: Uint8Array<ArrayBuffer>): Promise<Descriptor> {
  const descriptor = { mediaType, digest: digestOf('sha256', bytes), size: bytes.length };
  const head = await client.send(`/v2/${repository}/blobs/${descriptor.digest}`, { method: 'HEAD' });
  if (head.ok) return descriptor;
  const body = { 'content-type': 'application/octet-stream' };
  let res = await client.send(`/v2/${repository}/blobs/uploads/?digest=${descriptor.digest}`, { method: 'POST', headers: body, body: bytes });
  if (res.status === 202) {
    // a registry that opened a session instead: finish it in one PUT
    const location = res.headers.get('location');
    await res.arrayBuffer();
    if (!location) throw new CliError(`${client.url} opened an upload without a Location`);
    const url = new URL(location, `${client.url}/`);
    url.searchParams.set('digest', descriptor.digest);
    res = await client.send(url.href, { method: 'PUT', headers: body, body: bytes });
  }
  const text = await res.text();
  if (res.status !== 201) throw client.failure(res, text);
  return descriptor;
}

export interface Signed {
  repository: string;
  digest: string;
  tag?: string;
  dockerReference: string;
  signature: string;
}

export function registerSign(program: Command): void {
  withJson(
    program
      .command('sign')
      .description('sign an image with a PEM private key, as cosign does, and push the signature as a referrer')
      .argument('<reference>', 'the image: REPOSITORY:TAG or REPOSITORY@sha256:… (e.g. team/app:1.0)')
      .requiredOption('--key <file>', 'the PEM private key (openssl ecparam -genkey -name prime256v1 -noout -out key.pem)'),
  ).action(
    action(async (raw: string, opts: JsonOption & { key: string }) => {
      const client = await loggedIn();
      const host = new URL(client.url).host;
      const ref = parseReference(raw, host);
      const { key, hash } = await readSigningKey(opts.key);
      const subject = await resolve(client, ref);
      const dockerReference = `${host}/${ref.repository}`;
      const payload = Buffer.from(simpleSigningPayload(dockerReference, subject.digest));
      const signature = sign(hash, payload, key).toString('base64');
      const layer = { ...(await pushBlob(client, ref.repository, cosign.simpleSigning, payload)), annotations: { [cosign.signatureAnnotation]: signature } };
      const config = await pushBlob(client, ref.repository, oci.empty, Buffer.from('{}'));
      const manifest = Buffer.from(
        JSON.stringify({ schemaVersion: 2, mediaType: oci.manifest, artifactType: cosign.artifactType, config, layers: [layer], subject }),
      );
      const digest = digestOf('sha256', manifest);
      const res = await client.send(`/v2/${ref.repository}/manifests/${digest}`, { method: 'PUT', headers: { 'content-type': oci.manifest }, body: manifest });
      const text = await res.text();
      if (res.status !== 201) throw client.failure(res, text);
      const done: Signed = { repository: ref.repository, digest: subject.digest, ...(ref.tag ? { tag: ref.tag } : {}), dockerReference, signature: digest };
      emit(opts, done, () =>
        [
          `signed ${ref.repository}@${subject.digest}${ref.tag ? ` (${ref.tag})` : ''}: signature ${digest}`,
          `its verdict: custody artifact show ${ref.repository} ${subject.digest}`,
        ].join('\n'),
      );
    }),
  );
}
