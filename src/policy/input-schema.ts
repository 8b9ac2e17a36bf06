/**
 * The policy input document, version 1: what every policy (CEL or OPA Wasm) is given to decide
 * on. This JSON Schema is the contract: docs/policy.md describes it, `custody policy schema`
 * prints it, the tests validate every input the registry builds against it, and the CEL
 * checker's declarations are derived from it, so a CEL policy can name only the fields listed
 * here. Every field is always present: maps and lists are empty and strings '' when the artifact
 * has none, so expressions need no has() guards.
 *
 * An object schema with a `title` inside a list becomes a named CEL type; one with
 * `additionalProperties` is a map. Numbers are CEL doubles (write 1024.0, or compare with ints:
 * CEL compares int with double).
 */

export const inputVersion = 'custody.policy.input/v1';

type Schema = Record<string, unknown>;

const str = (description: string): Schema => ({ type: 'string', description });
const num = (description: string): Schema => ({ type: 'number', description });
const bool = (description: string): Schema => ({ type: 'boolean', description });
const strings = (description: string): Schema => ({ type: 'array', items: { type: 'string' }, description });
const stringMap = (description: string): Schema => ({ type: 'object', additionalProperties: { type: 'string' }, description });
const object = (properties: Record<string, Schema>, extra: Schema = {}): Schema => ({
  type: 'object',
  properties,
  required: Object.keys(properties),
  additionalProperties: false,
  ...extra,
});
const list = (title: string, properties: Record<string, Schema>, description: string): Schema => ({
  type: 'array',
  description,
  items: object(properties, { title }),
});

export const inputSchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://custody.dev/schemas/policy-input-v1.json',
  title: 'Custody policy input, version 1',
  ...object({
    version: { const: inputVersion, description: 'this document version' },
    action: { enum: ['push', 'pull', 'delete', 'retention'], description: 'what is being decided (retention: a deletion a retention run plans)' },
    artifact: object({
      repository: str('the repository, e.g. team/app'),
      namespace: str('the namespace: the repository name up to its first /'),
      digest: str('the manifest digest'),
      tag: str('the tag pushed, pulled or deleted; "" when addressed by digest'),
      mediaType: str("the manifest's media type"),
      artifactType: str("the manifest's artifactType, else its config's media type; '' for an index without one"),
      size: num('bytes of the manifest and every blob it references (an index: its own bytes)'),
      labels: stringMap("the image config's labels (config.Labels); empty for other artifacts"),
      annotations: stringMap("the manifest's annotations"),
      created: str("when it was built (the org.opencontainers.image.created annotation, else the config's created), RFC 3339; '' if unknown"),
      platforms: list(
        'Platform',
        { os: str('e.g. linux'), architecture: str('e.g. amd64'), variant: str("e.g. v8; '' if none") },
        'an index: its entries; an image: its config',
      ),
      layers: list(
        'Layer',
        { mediaType: str('the layer media type'), digest: str('its digest'), size: num('its size in bytes') },
        "an image's layers; empty for an index",
      ),
      subject: str("the digest this artifact refers to (a signature's subject); '' if none"),
      wasm: object(
        {
          component: bool('a WebAssembly component (not a core module)'),
          imports: strings('the component\'s imports by name, e.g. "wasi:sockets/tcp@0.2.0"'),
          exports: strings("the component's exports by name"),
          complete: bool('the whole binary was read: false when it is truncated, malformed or past a cap, so a policy can deny what could not be read'),
        },
        { description: 'for Wasm layers (application/wasm, application/vnd.wasm.*): what the component imports and exports; empty otherwise' },
      ),
    }),
    trust: object({
      signatures: list(
        'Signature',
        {
          format: str('cosign, sigstore-bundle, notary-jws, notary-cose'),
          signer: str("who signed: a certificate's identity (e-mail, URI) or a key's id; '' if unverified"),
          issuer: str("the OIDC issuer of a keyless signature; '' otherwise"),
          verified: bool('verified against the trust of the namespace'),
          code: str("the verdict's reason code (docs/trust.md); 'pending' before verification"),
        },
        'signatures attached to this manifest (referrers and cosign tags)',
      ),
      attestations: list(
        'Attestation',
        {
          predicateType: str('e.g. https://slsa.dev/provenance/v1'),
          builderId: str("the SLSA builder id; '' if none"),
          sourceRepository: str("the source repository the provenance names; '' if none"),
          signer: str("who signed the envelope; '' if unverified"),
          verified: bool('its signature verified'),
        },
        'in-toto attestations attached to this manifest',
      ),
      sbom: object({
        present: bool('an SBOM is attached'),
        format: str("cyclonedx or spdx; '' if none"),
        componentCount: num('how many components it lists'),
        licenses: strings('every license id or expression it names, once each'),
        components: list(
          'Component',
          { name: str('component name'), version: str("its version; '' if none"), purl: str("its package URL; '' if none"), licenses: strings('its licenses') },
          'the components (at most 10000)',
        ),
      }),
    }),
    // `ns`, not `namespace`: that is a reserved word in CEL.
    ns: object({
      name: str('the namespace'),
      storedBytes: num(
        "the namespace's usage as quotas count it: its fair share of the blobs its repositories link (a blob k namespaces link counts size/k to each) plus its manifests (on push: including the blobs this push uploaded)",
      ),
      quotaBytes: num("the namespace's hard storage quota, which the registry enforces on every push; 0 when none"),
      labels: stringMap("the namespace's labels (e.g. team, cost-center)"),
      budget: num("the namespace's hard monthly cost budget, in the price model's currency; 0 when none"),
      costThisMonth: num("what the namespace's usage cost this calendar month (UTC) so far, priced by insight.cost; read again at most once a minute"),
    }),
    request: object({
      repository: str('the repository the request names (the same as artifact.repository)'),
      identity: object({
        name: str("the user's or robot's name; 'anonymous'"),
        kind: { enum: ['user', 'robot', 'anonymous'], description: 'who is asking' },
        admin: bool('a registry administrator'),
        teams: strings("the user's teams"),
        roles: strings("the roles the identity holds in the artifact's namespace (reader, writer, maintainer, admin)"),
      }),
      tokenKind: {
        enum: ['password', 'token', 'jwt', 'anonymous'],
        description: 'how it authenticated: a password, a personal or robot token, a JWT from /token, or not at all',
      },
      userAgent: str("the User-Agent header; '' if none"),
      sourceAddress: str('the client address (through trusted proxies: the forwarded one)'),
      time: str('when the request arrived, RFC 3339 in UTC (timestamp(request.time) in CEL)'),
    }),
  }),
} as const;

export type Action = 'push' | 'pull' | 'delete' | 'retention';

export interface PolicyInput {
  version: typeof inputVersion;
  action: Action;
  artifact: {
    repository: string;
    namespace: string;
    digest: string;
    tag: string;
    mediaType: string;
    artifactType: string;
    size: number;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    created: string;
    platforms: { os: string; architecture: string; variant: string }[];
    layers: { mediaType: string; digest: string; size: number }[];
    subject: string;
    wasm: { component: boolean; imports: string[]; exports: string[]; complete: boolean };
  };
  trust: {
    signatures: { format: string; signer: string; issuer: string; verified: boolean; code: string }[];
    attestations: { predicateType: string; builderId: string; sourceRepository: string; signer: string; verified: boolean }[];
    sbom: {
      present: boolean;
      format: string;
      componentCount: number;
      licenses: string[];
      components: { name: string; version: string; purl: string; licenses: string[] }[];
    };
  };
  ns: { name: string; storedBytes: number; quotaBytes: number; labels: Record<string, string>; budget: number; costThisMonth: number };
  request: {
    repository: string;
    identity: { name: string; kind: 'user' | 'robot' | 'anonymous'; admin: boolean; teams: string[]; roles: string[] };
    tokenKind: 'password' | 'token' | 'jwt' | 'anonymous';
    userAgent: string;
    sourceAddress: string;
    time: string;
  };
}

/** The input's sections a policy can read; the registry builds only those its policies name. */
export type Section = 'artifact' | 'trust' | 'ns' | 'request';
export const sections: readonly Section[] = ['artifact', 'trust', 'ns', 'request'];
