/**
 * The compose example in deploy/compose: it cannot be run here (no container runtime), so this
 * checks that it cannot rot: every variable it gives Custody is one the server reads
 * (src/config/load.ts's table) and holds a value the server accepts, the database URL matches the
 * PostgreSQL service's credentials, the S3 credentials match MinIO's, the bucket the URL names is
 * the one made at start, and nginx proxies to exactly the Custody services, from the address
 * Custody trusts.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { environment, loadConfig } from '../src/config/load.ts';
import { projectRoot } from './helpers/server.ts';

const dir = path.join(projectRoot, 'deploy/compose');
type Service = {
  image: string;
  environment?: Record<string, string | number | boolean>;
  entrypoint?: string[];
  networks?: string[] | Record<string, { ipv4_address?: string }>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
};
const compose = parseYaml(readFileSync(path.join(dir, 'compose.yaml'), 'utf8'), { merge: true }) as { services: Record<string, Service> };
const nginx = readFileSync(path.join(dir, 'nginx.conf'), 'utf8');
const services = Object.entries(compose.services);
const custody = services.filter(([, s]) => s.image.startsWith('custody:'));
/** Variables the server reads besides its own: the AWS SDK's credentials. */
const aws = new Set(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION', 'AWS_PROFILE']);
/** compose's ${NAME:?message} as a value the shell would give it */
const interpolate = (env: Record<string, string | number | boolean>) =>
  Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v).replace(/\$\{(\w+):\?[^}]*\}/g, 'a-long-password')]));

describe('deploy/compose', () => {
  it('runs two Custody replicas, each with the same settings', () => {
    expect(custody.map(([name]) => name).sort()).toEqual(['custody-1', 'custody-2']);
    expect(custody[0]![1].environment).toEqual(custody[1]![1].environment);
  });

  it('gives Custody only variables it reads, with values its configuration accepts', async () => {
    for (const [, service] of custody) {
      const env = service.environment ?? {};
      const unknown = Object.keys(env).filter((name) => !(name in environment) && !aws.has(name));
      expect(unknown).toEqual([]);
      const config = await loadConfig({ env: interpolate(env) });
      expect(config.database.url).toMatch(/^postgres:\/\//);
      expect(config.storage.url).toMatch(/^s3:\/\//);
      expect(config.trustedProxies).toHaveLength(1);
    }
  });

  it('points Custody at the PostgreSQL and MinIO services it starts, with their credentials and bucket', () => {
    const env = custody[0]![1].environment as Record<string, string>;
    const db = new URL(env.CUSTODY_DATABASE_URL!);
    const pg = compose.services[db.hostname]!;
    expect(pg.image).toMatch(/^postgres:/);
    expect([db.username, db.password, db.pathname.slice(1)]).toEqual([
      pg.environment!.POSTGRES_USER,
      pg.environment!.POSTGRES_PASSWORD,
      pg.environment!.POSTGRES_DB,
    ]);
    const s3 = new URL(env.CUSTODY_STORAGE_URL!);
    expect(s3.searchParams.get('forcePathStyle')).toBe('true');
    const endpoint = new URL(s3.searchParams.get('endpoint')!);
    const minio = compose.services[endpoint.hostname]!;
    expect([env.AWS_ACCESS_KEY_ID, env.AWS_SECRET_ACCESS_KEY]).toEqual([minio.environment!.MINIO_ROOT_USER, minio.environment!.MINIO_ROOT_PASSWORD]);
    const bucketJob = services.find(([, s]) => s.entrypoint?.join(' ').includes(' mb '))!;
    expect(bucketJob[1].entrypoint!.join(' ')).toContain(`local/${s3.hostname}`);
    expect(custody[0]![1].depends_on).toMatchObject({
      [db.hostname]: { condition: 'service_healthy' },
      [bucketJob[0]]: { condition: 'service_completed_successfully' },
    });
    expect(custody[0]![1].healthcheck!.test.join(' ')).toContain('/readyz');
  });

  it('puts nginx in front of exactly those replicas, at the one address Custody trusts', () => {
    const upstreams = [...nginx.matchAll(/^\s*server\s+([\w-]+):(\d+)/gm)].map((m) => `${m[1]}:${m[2]}`);
    expect(upstreams.sort()).toEqual(custody.map(([name]) => `${name}:5000`).sort());
    const proxy = services.find(([, s]) => s.image.startsWith('nginx:'))![1];
    const address = (proxy.networks as Record<string, { ipv4_address?: string }>).registry!.ipv4_address;
    expect(custody[0]![1].environment!.CUSTODY_TRUSTED_PROXIES).toBe(address);
    for (const directive of [
      'client_max_body_size 0;',
      'proxy_request_buffering off;',
      'proxy_buffering off;',
      'X-Forwarded-For',
      'X-Forwarded-Proto',
      'X-Forwarded-Host',
    ])
      expect(nginx).toContain(directive);
  });
});

describe('deploy/Dockerfile', () => {
  const dockerfile = readFileSync(path.join(projectRoot, 'deploy/Dockerfile'), 'utf8');
  const pkg = JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { bin: { custody: string }; files: string[] };
  const values = parseYaml(readFileSync(path.join(projectRoot, 'deploy/helm/custody/values.yaml'), 'utf8')) as {
    podSecurityContext: { runAsUser: number; runAsGroup: number };
  };
  it("ships what the package publishes, runs the custody bin, as the chart's user", () => {
    const copied = [...dockerfile.matchAll(/^COPY --from=build \/src\/(\S+)/gm)].map((m) => m[1]);
    expect(copied).toEqual(expect.arrayContaining([...pkg.files, 'package.json', 'node_modules']));
    expect(dockerfile).toContain(`ENTRYPOINT ["/app/${pkg.bin.custody}"]`);
    expect(dockerfile).toContain(`USER ${values.podSecurityContext.runAsUser}:${values.podSecurityContext.runAsGroup}`);
    expect(dockerfile).toMatch(/^FROM node:24\b/m);
  });
});
