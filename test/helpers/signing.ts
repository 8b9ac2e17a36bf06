/**
 * Signed artifacts as clients push them, made with node:crypto: cosign simple-signing
 * signatures (as OCI 1.1 referrers or under cosign's legacy `.sig` tag), DSSE in-toto
 * attestations and CycloneDX SBOMs.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { descriptorOf, pushBlob, putManifest, request, sha256, type Descriptor, type Reply, types } from './http.ts';

export const cosignTypes = {
  simpleSigning: 'application/vnd.dev.cosign.simplesigning.v1+json',
  artifactSig: 'application/vnd.dev.cosign.artifact.sig.v1+json',
  dsse: 'application/vnd.dsse.envelope.v1+json',
  cyclonedx: 'application/vnd.cyclonedx+json',
  signatureAnnotation: 'dev.cosignproject.cosign/signature',
};

export interface SigningKey {
  privateKey: KeyObject;
  pem: string;
}

export function newKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export function simpleSigningPayload(digest: string, reference = 'registry.example/team/app'): string {
  return JSON.stringify({
    critical: { identity: { 'docker-reference': reference }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' },
    optional: null,
  });
}

/** Pushes an empty config blob and returns its descriptor. */
async function emptyConfig(base: string, repo: string): Promise<Descriptor> {
  await pushBlob(base, repo, '{}');
  return descriptorOf('{}', types.empty);
}

/** A cosign signature of `subject`, as a referrer (default) or under the legacy tag. */
export async function pushCosignSignature(
  base: string,
  repo: string,
  subject: Descriptor,
  key: SigningKey,
  options: { legacy?: boolean; payload?: string } = {},
): Promise<{ digest: string; reply: Reply }> {
  const payload = options.payload ?? simpleSigningPayload(subject.digest);
  const signature = sign('sha256', Buffer.from(payload), key.privateKey).toString('base64');
  await pushBlob(base, repo, payload);
  const layer = { ...descriptorOf(payload, cosignTypes.simpleSigning), annotations: { [cosignTypes.signatureAnnotation]: signature } };
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: types.manifest,
    ...(options.legacy ? {} : { artifactType: cosignTypes.artifactSig, subject }),
    config: await emptyConfig(base, repo),
    layers: [layer],
  });
  const ref = options.legacy ? `${subject.digest.replace(':', '-')}.sig` : descriptorOf(body, types.manifest).digest;
  const reply = await putManifest(base, repo, ref, body);
  if (reply.status !== 201) throw new Error(`push signature: ${reply.status} ${reply.body.toString()}`);
  return { digest: descriptorOf(body, types.manifest).digest, reply };
}

/** DSSE's pre-authentication encoding: what a DSSE signature signs. */
export function pae(payloadType: string, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(payloadType)} ${payloadType} ${payload.length} `), payload]);
}

/** Where an artifact goes: as a referrer (by digest, with a subject), or under cosign's legacy tag. */
async function pushArtifact(
  base: string,
  repo: string,
  subject: Descriptor,
  manifest: Record<string, unknown>,
  legacySuffix: string | undefined,
  what: string,
): Promise<string> {
  const body = JSON.stringify({ schemaVersion: 2, mediaType: types.manifest, ...manifest, ...(legacySuffix ? {} : { subject }) });
  const digest = descriptorOf(body, types.manifest).digest;
  const reply = await putManifest(base, repo, legacySuffix ? `${subject.digest.replace(':', '-')}.${legacySuffix}` : digest, body);
  if (reply.status !== 201) throw new Error(`push ${what}: ${reply.status} ${reply.body.toString()}`);
  return digest;
}

/** An in-toto attestation of `subject` in a DSSE envelope signed with `key`, as a referrer or under `.att`. */
export async function pushAttestation(
  base: string,
  repo: string,
  subject: Descriptor,
  key: SigningKey,
  predicateType: string,
  predicate: unknown,
  options: { legacy?: boolean } = {},
): Promise<string> {
  const statement = Buffer.from(
    JSON.stringify({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: repo, digest: { sha256: subject.digest.split(':')[1] } }],
      predicateType,
      predicate,
    }),
  );
  const payloadType = 'application/vnd.in-toto+json';
  const envelope = JSON.stringify({
    payloadType,
    payload: statement.toString('base64'),
    signatures: [{ keyid: '', sig: sign('sha256', pae(payloadType, statement), key.privateKey).toString('base64') }],
  });
  await pushBlob(base, repo, envelope);
  const manifest = { artifactType: 'application/vnd.in-toto+json', config: await emptyConfig(base, repo), layers: [descriptorOf(envelope, cosignTypes.dsse)] };
  return pushArtifact(base, repo, subject, manifest, options.legacy ? 'att' : undefined, 'attestation');
}

/** A CycloneDX SBOM of `subject`, as a referrer or under `.sbom`. */
export async function pushSbom(
  base: string,
  repo: string,
  subject: Descriptor,
  components: { name: string; version: string; purl?: string; license?: string }[],
  options: { legacy?: boolean } = {},
): Promise<string> {
  const bom = JSON.stringify({
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    version: 1,
    metadata: { component: { type: 'container', name: repo } },
    components: components.map((c) => ({
      type: 'library',
      name: c.name,
      version: c.version,
      ...(c.purl ? { purl: c.purl } : {}),
      ...(c.license ? { licenses: [{ license: { id: c.license } }] } : {}),
    })),
  });
  await pushBlob(base, repo, bom);
  const manifest = { artifactType: cosignTypes.cyclonedx, config: await emptyConfig(base, repo), layers: [descriptorOf(bom, cosignTypes.cyclonedx)] };
  return pushArtifact(base, repo, subject, manifest, options.legacy ? 'sbom' : undefined, 'sbom');
}

/** Polls the artifact API until nothing attached to `digest` is pending. */
/** PUT /api/v1/namespaces/<ns>/trust with `document` (as an admin on the in-process server). */
export const putTrust = (base: string, ns: string, document: unknown, auth?: string): Promise<Reply> =>
  request(base, `/api/v1/namespaces/${ns}/trust`, {
    method: 'PUT',
    body: JSON.stringify(document),
    headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
  });

export async function settledArtifact<T = ArtifactView>(base: string, repo: string, digest: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await request(base, `/api/v1/repositories/${repo}/artifacts/${digest}`);
    if (r.status !== 200) throw new Error(`artifact API: ${r.status} ${r.body.toString()}`);
    const view = r.json<ArtifactView>();
    if (view.summary.pending === 0) return view as T;
    if (Date.now() > deadline) throw new Error(`still pending after ${timeoutMs} ms: ${JSON.stringify(view.referrers)}`);
    // verification runs in the background with no event to wait on; a look costs well under a millisecond
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export interface ReferrerView {
  digest: string;
  kind: string;
  format: string | null;
  via: string;
  status: string;
  verified: boolean | null;
  signer: string | null;
  reason: string;
  /** docs/trust.md's reason codes; null for a verdict stored before codes */
  code: string | null;
  details: Record<string, unknown>;
}

export interface ArtifactView {
  repository: string;
  digest: string;
  tags: string[];
  summary: { signatures: number; verifiedSignatures: number; attestations: number; sboms: number; pending: number };
  referrers: ReferrerView[];
}

/** Any one-layer artifact (a signature envelope, a bundle, an SBOM) as a referrer of `subject`, or under `tag`. */
export async function pushReferrer(
  base: string,
  repo: string,
  subject: Descriptor,
  layer: { mediaType: string; bytes: Buffer; annotations?: Record<string, string> },
  artifactType: string,
  options: { tag?: string; annotations?: Record<string, string> } = {},
): Promise<string> {
  await pushBlob(base, repo, layer.bytes);
  const layerDescriptor = {
    mediaType: layer.mediaType,
    digest: sha256(layer.bytes),
    size: layer.bytes.length,
    ...(layer.annotations ? { annotations: layer.annotations } : {}),
  };
  const manifest = {
    artifactType,
    config: await emptyConfig(base, repo),
    layers: [layerDescriptor],
    ...(options.annotations ? { annotations: options.annotations } : {}),
  };
  const body = JSON.stringify({ schemaVersion: 2, mediaType: types.manifest, ...manifest, ...(options.tag ? {} : { subject }) });
  const digest = descriptorOf(body, types.manifest).digest;
  const reply = await putManifest(base, repo, options.tag ?? digest, body);
  if (reply.status !== 201) throw new Error(`push ${artifactType}: ${reply.status} ${reply.body.toString()}`);
  return digest;
}
