/**
 * The Helm chart in deploy/helm/custody, without helm (it cannot be installed here): the chart is
 * rendered by test/helpers/helm-template.ts with its default values, with the replicated-on-S3
 * example and with inline secrets; every document is parsed and checked against a hand-written
 * subset of the Kubernetes schema for its kind (test/fixtures/k8s-schemas/), its CUSTODY_*
 * variables against the server's own table, and its custody.yaml against the server's own
 * config schema. values.yaml and the example are checked against values.schema.json, as helm
 * checks them at install.
 */
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { environment, validate } from '../src/config/load.ts';
import { HelmRenderer } from './helpers/helm-template.ts';
import { projectRoot } from './helpers/server.ts';

const chartDir = path.join(projectRoot, 'deploy/helm/custody');
const schemaDir = path.join(projectRoot, 'test/fixtures/k8s-schemas');
const readYaml = (file: string) => parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown>;
const replicated = readYaml(path.join(projectRoot, 'deploy/helm/values-replicated-s3.yaml'));

const ajv = new Ajv({ allErrors: true, strict: false });
for (const file of readdirSync(schemaDir)) ajv.addSchema(JSON.parse(readFileSync(path.join(schemaDir, file), 'utf8')) as object);
const valuesValid = new Ajv({ allErrors: true, strict: true, strictTypes: false }).compile(
  JSON.parse(readFileSync(path.join(chartDir, 'values.schema.json'), 'utf8')) as object,
);

type Doc = Record<string, unknown> & { kind: string; metadata: { name: string } };

/** The chart rendered with `values` over its own, as Kubernetes documents (empty ones dropped). */
function render(values: Record<string, unknown> = {}, dir = chartDir): Doc[] {
  const docs: Doc[] = [];
  for (const [file, text] of HelmRenderer.renderChart(dir, values)) {
    for (const d of parseAllDocuments(text)) {
      if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
      const doc = d.toJS() as Doc | null;
      if (doc !== null) docs.push(doc);
    }
  }
  return docs;
}

/** Each document's schema errors, by kind and name; empty when all are valid. */
function schemaErrors(docs: Doc[]): string[] {
  return docs.flatMap((doc) => {
    const check: ValidateFunction | undefined = ajv.getSchema(`k8s/${doc.kind}.json`);
    if (check === undefined) return [`${doc.kind}: no schema for this kind`];
    const { kind, metadata } = doc;
    if (check(doc)) return [];
    return (check.errors ?? []).map((e) => `${kind} ${metadata?.name}: ${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);
  });
}

const byKind = (docs: Doc[], kind: string) => docs.filter((d) => d.kind === kind);
type Container = { env: { name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string } } }[]; args: string[] };
type Deployment = {
  spec: { replicas: number; strategy: { type: string }; template: { spec: { containers: Container[]; volumes: Record<string, unknown>[] } } };
};
const deploymentOf = (docs: Doc[]) => {
  const [d, ...rest] = byKind(docs, 'Deployment');
  expect(rest).toHaveLength(0);
  return d as unknown as Deployment;
};
const containerOf = (docs: Doc[]) => deploymentOf(docs).spec.template.spec.containers[0]!;
const envOf = (docs: Doc[]) => new Map(containerOf(docs).env.map((e) => [e.name, e]));

describe('the template renderer', () => {
  const root = { Values: { a: { b: 'x' }, list: [1, 2], map: { k: 'v' }, empty: [] as unknown[], n: 0 } };
  it('renders the subset the chart uses', () => {
    expect(HelmRenderer.renderString('a: {{ .Values.a.b | quote }}', root)).toBe('a: "x"');
    expect(HelmRenderer.renderString('x\n  {{- if .Values.n }}yes{{ else if .Values.a }}a{{ else }}no{{ end }}', root)).toBe('xa');
    expect(HelmRenderer.renderString('{{- range .Values.list }}\n- {{ . }}{{ $.Values.a.b }}\n{{- end }}', root)).toBe('\n- 1x\n- 2x');
    expect(HelmRenderer.renderString('{{ range $k, $v := .Values.map }}{{ $k }}={{ $v }}{{ end }}', root)).toBe('k=v');
    expect(HelmRenderer.renderString('m:{{ toYaml .Values.map | nindent 2 }}', root)).toBe('m:\n  k: v');
    expect(HelmRenderer.renderString('{{ default "d" .Values.empty }} {{ printf "%s-%v" "a" 5 }}', root)).toBe('d a-5');
    expect(HelmRenderer.renderString('{{ if and (eq .Values.a.b "x") (not .Values.n) }}ok{{ end }}', root)).toBe('ok');
    expect(HelmRenderer.renderString('{{- define "t" -}}[{{ .a.b }}]{{- end -}}{{ include "t" .Values }}', root)).toBe('[x]');
  });
  it('refuses what it does not know rather than render it wrongly', () => {
    expect(() => HelmRenderer.renderString('{{ .Values.a.b | upper }}', root)).toThrow(/unsupported function upper/);
    expect(() => HelmRenderer.renderString('{{ with .Values.a }}{{ end }}', root)).toThrow(/unsupported/);
    expect(() => HelmRenderer.renderString('{{ if .Values.a }}open', root)).toThrow(/missing \{\{ end \}\}/);
  });
});

describe('values.schema.json', () => {
  it('accepts values.yaml and the replicated example', () => {
    expect(valuesValid(readYaml(path.join(chartDir, 'values.yaml'))), JSON.stringify(valuesValid.errors)).toBe(true);
    const merged = HelmRenderer.mergedValues(chartDir, replicated);
    expect(valuesValid(merged), JSON.stringify(valuesValid.errors)).toBe(true);
  });
  it('refuses several replicas on SQLite or a volume of their own, S3 without a URL or without PostgreSQL, and unknown keys', () => {
    const bad: Record<string, unknown>[] = [
      { replicaCount: 2 },
      { replicaCount: 2, database: { existingSecret: 'db' } },
      { replicaCount: 2, storage: { mode: 's3', s3: { url: 's3://bucket/p' } } },
      { storage: { mode: 's3' } },
      { storage: { mode: 'gcs' } },
      { database: { existingSecret: 'db' }, storage: { mode: 's3', s3: { url: 's3://bucket/p', accessKeyId: 'AKIA' } } },
      // SQLite in the emptyDir that S3 mode mounts at /data would be lost with the pod
      { storage: { mode: 's3', s3: { url: 's3://bucket/p' } } },
      { admin: { password: 'short' } },
      { database: { url: 'mysql://x' } },
      { config: { listen: '0.0.0.0:80' } },
      { replicas: 3 },
    ];
    for (const over of bad) expect(valuesValid(HelmRenderer.mergedValues(chartDir, over)), JSON.stringify(over)).toBe(false);
    const good = { replicaCount: 2, database: { existingSecret: 'db' }, storage: { mode: 'filesystem', filesystem: { existingClaim: 'shared-rwx' } } };
    expect(valuesValid(HelmRenderer.mergedValues(chartDir, good)), JSON.stringify(valuesValid.errors)).toBe(true);
  });
});

describe('the rendered chart', () => {
  it('with the default values: one replica on SQLite and a volume, every document valid', () => {
    const docs = render();
    expect(docs.map((d) => d.kind).sort()).toEqual(['Deployment', 'PersistentVolumeClaim', 'Service', 'ServiceAccount']);
    expect(schemaErrors(docs)).toEqual([]);
    const deployment = deploymentOf(docs);
    expect(deployment.spec.replicas).toBe(1);
    expect(deployment.spec.strategy.type).toBe('Recreate');
    const env = envOf(docs);
    expect(env.has('CUSTODY_DATABASE_URL')).toBe(false);
    expect(env.get('CUSTODY_STORAGE_URL')?.value).toBe('/data/blobs');
    expect(env.has('CUSTODY_ADMIN_PASSWORD')).toBe(false);
    const pvc = byKind(docs, 'PersistentVolumeClaim')[0]!;
    expect(deployment.spec.template.spec.volumes).toContainEqual({ name: 'data', persistentVolumeClaim: { claimName: pvc.metadata.name } });
  });

  it('replicated on S3: PostgreSQL, S3 and the admin password from Secrets, a rolling update, an ingress', () => {
    const docs = render(replicated);
    expect(docs.map((d) => d.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'Ingress', 'Service', 'ServiceAccount']);
    expect(schemaErrors(docs)).toEqual([]);
    const deployment = deploymentOf(docs);
    expect(deployment.spec.replicas).toBe(3);
    expect(deployment.spec.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
    const env = envOf(docs);
    expect(env.get('CUSTODY_DATABASE_URL')?.valueFrom?.secretKeyRef).toEqual({ name: 'custody-database', key: 'url' });
    expect(env.get('CUSTODY_STORAGE_URL')?.value).toBe('s3://custody-blobs/registry?region=eu-west-1');
    expect(env.get('AWS_ACCESS_KEY_ID')?.valueFrom?.secretKeyRef).toEqual({ name: 'custody-s3', key: 'AWS_ACCESS_KEY_ID' });
    expect(env.get('AWS_SECRET_ACCESS_KEY')?.valueFrom?.secretKeyRef).toEqual({ name: 'custody-s3', key: 'AWS_SECRET_ACCESS_KEY' });
    expect(env.get('CUSTODY_ADMIN_PASSWORD')?.valueFrom?.secretKeyRef).toEqual({ name: 'custody-admin', key: 'password' });
    expect(deployment.spec.template.spec.volumes).toContainEqual({ name: 'data', emptyDir: {} });
    // the custody.yaml in the ConfigMap is one the server itself accepts
    const configMap = byKind(docs, 'ConfigMap')[0] as unknown as { data: { 'custody.yaml': string } };
    const config = validate(parseYaml(configMap.data['custody.yaml']), 'the ConfigMap');
    expect(config.trustedProxies).toEqual(['10.0.0.0/8']);
    expect(containerOf(docs).args).toEqual(['serve', '--config', '/etc/custody/custody.yaml']);
  });

  it('with inline secrets: the chart makes one Secret, and the container reads each key from it', () => {
    const docs = render({ database: { url: 'postgres://c:pw@db/custody' }, admin: { password: 'a-long-password' } });
    expect(schemaErrors(docs)).toEqual([]);
    const [secret] = byKind(docs, 'Secret') as (Doc & { stringData: Record<string, string> })[];
    expect(Object.keys(secret!.stringData).sort()).toEqual(['admin-password', 'database-url']);
    const env = envOf(docs);
    for (const name of ['CUSTODY_DATABASE_URL', 'CUSTODY_ADMIN_PASSWORD']) {
      const ref = env.get(name)?.valueFrom?.secretKeyRef;
      expect(ref?.name).toBe(secret!.metadata.name);
      expect(Object.keys(secret!.stringData)).toContain(ref?.key);
    }
  });

  it('sets only variables the server reads', () => {
    for (const values of [{}, replicated]) {
      const names = [...envOf(render(values)).keys()];
      const unknown = names.filter((n) => !(n in environment) && !/^AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY)$/.test(n));
      expect(unknown).toEqual([]);
    }
  });

  describe('a broken chart fails the check', () => {
    const broken = mkdtempSync(path.join(tmpdir(), 'custody-chart-'));
    afterAll(() => rmSync(broken, { recursive: true, force: true }));
    const breakWith = (file: string, from: RegExp, to: string) => {
      cpSync(chartDir, broken, { recursive: true });
      const target = path.join(broken, 'templates', file);
      const text = readFileSync(target, 'utf8');
      expect(text).toMatch(from);
      writeFileSync(target, text.replace(from, to));
    };
    it('a container without its image', () => {
      breakWith('deployment.yaml', /^ {10}image: .*\n/m, '');
      expect(schemaErrors(render({}, broken)).join('\n')).toMatch(
        /Deployment registry-custody: \/spec\/template\/spec\/containers\/0 must have required property 'image'/,
      );
    });
    it('a probe on a misspelt field', () => {
      breakWith(
        'deployment.yaml',
        /periodSeconds: \{\{ \.Values\.probes\.readiness\.periodSeconds \}\}/,
        'period: {{ .Values.probes.readiness.periodSeconds }}',
      );
      expect(schemaErrors(render({}, broken)).join('\n')).toMatch(/readinessProbe must NOT have additional properties/);
    });
    it('a Service without ports', () => {
      breakWith('service.yaml', /^ {2}ports:\n(?: {4,}.*\n)+/m, '');
      expect(schemaErrors(render({}, broken)).join('\n')).toMatch(/Service registry-custody: \/spec must have required property 'ports'/);
    });
  });
});
