/**
 * GET /tuf/<namespace>/…: the namespace's TUF repository (see README.md for the URL scheme).
 * Every request asks the access controller for pull on the namespace; errors are the /api/v1
 * JSON shape. Metadata is served exactly as stored; target files are manifests from the MetaStore.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AccessController } from '../auth/access.ts';
import type { ManifestIndex } from '../meta/metastore.ts';
import type { TufRole } from '../meta/tuf.ts';
import { parseTargetFile, type TargetRequest, type TufPublisher } from '../trust/tuf/index.ts';
import { ask, namespaceName } from './context.ts';
import { installApiErrors, invalid, notFound } from './errors.ts';

export interface TufRouteDeps {
  publisher: TufPublisher;
  manifests: Pick<ManifestIndex, 'getManifest'>;
  controller: AccessController;
}

type Resource =
  | { kind: 'latest'; role: 'root' | 'timestamp' }
  | { kind: 'version'; role: Exclude<TufRole, 'timestamp'>; version: number }
  | { kind: 'target'; target: TargetRequest };

/** The routes, as data: what each path under /tuf/<namespace>/ names. */
function resource(namespace: string, segments: string[]): Resource | undefined {
  if (segments[0] === 'targets' && segments.length > 1) {
    const target = parseTargetFile(namespace, segments.slice(1));
    return target && { kind: 'target', target };
  }
  if (segments.length !== 1) return undefined;
  const file = segments[0] as string;
  if (file === 'root.json' || file === 'timestamp.json') return { kind: 'latest', role: file === 'root.json' ? 'root' : 'timestamp' };
  const m = /^([1-9][0-9]{0,14})\.(root|targets|snapshot)\.json$/.exec(file);
  return m ? { kind: 'version', role: m[2] as 'root' | 'targets' | 'snapshot', version: Number(m[1]) } : undefined;
}

/** The namespace and the path segments after it, decoded once; path tricks are a 400. */
function split(url: string): { namespace: string; segments: string[] } {
  const path = url.split('?', 1)[0] ?? '';
  let segments: string[];
  try {
    segments = path.slice('/tuf/'.length).split('/').map(decodeURIComponent);
  } catch {
    throw invalid('invalid percent-encoding in the path');
  }
  if (segments.some((s) => s.includes('/') || s === '' || s === '.' || s === '..')) throw invalid('empty, relative or escaped path segments are not allowed');
  const [namespace = '', ...rest] = segments;
  if (!namespaceName.safeParse(namespace).success)
    throw invalid(`invalid namespace ${JSON.stringify(namespace.slice(0, 100))}: one lowercase repository path component`);
  return { namespace, segments: rest };
}

export function registerTufRoutes(app: FastifyInstance, deps: TufRouteDeps): void {
  app.register(
    async (tuf) => {
      installApiErrors(tuf);
      tuf.get('/*', (req, reply) => serve(deps, req, reply));
    },
    { prefix: '/tuf' },
  );
}

async function serve(deps: TufRouteDeps, req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const { namespace, segments } = split(req.raw.url ?? '/');
  const wanted = resource(namespace, segments);
  if (!wanted) throw notFound(`no TUF file ${segments.join('/').slice(0, 300)} in namespace ${namespace}`);
  await ask(deps.controller, req, reply, [{ type: 'repository', name: namespace, actions: ['pull'] }]);

  if (wanted.kind === 'target') {
    const { repository, tag, digest } = wanted.target;
    const manifest = await deps.manifests.getManifest(repository, digest);
    if (!manifest) throw notFound(`no manifest ${digest} in ${repository} (target ${repository}:${tag})`);
    return reply.header('content-type', manifest.mediaType).header('cache-control', 'private, max-age=31536000, immutable').send(Buffer.from(manifest.content));
  }
  if (wanted.kind === 'version') {
    const record = await deps.publisher.version(namespace, wanted.role, wanted.version);
    if (!record) throw notFound(`no ${wanted.version}.${wanted.role}.json in namespace ${namespace}`);
    return json(reply, record.json, 'private, max-age=31536000, immutable');
  }
  // timestamp.json is what a client asks first: the publisher checks the signed tags every time.
  const state = await deps.publisher.current(namespace, wanted.role === 'timestamp' ? 'now' : 'throttled');
  if (!state) throw notFound(`no namespace ${namespace}`);
  return json(reply, state[wanted.role].record.json, 'no-store');
}

const json = (reply: FastifyReply, body: string, cache: string) => reply.header('content-type', 'application/json').header('cache-control', cache).send(body);
