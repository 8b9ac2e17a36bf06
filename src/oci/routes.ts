/**
 * The /v2 routes, named once as data: the path pattern, the handler per method and the access
 * each needs. src/oci/dispatch.ts matches, checks names, asks the access controller, and calls.
 */
import type { Access } from '../auth/access.ts';
import { deleteBlob, getBlob } from './blobs.ts';
import type { Handler, Match } from './context.ts';
import { apiBase, catalog, listTags, referrers } from './discovery.ts';
import { deleteManifest, getManifest, putManifest } from './manifests.ts';
import { checkName } from './names.ts';
import { cancelUpload, finishUpload, patchUpload, startUpload, uploadStatus } from './uploads.ts';

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface Operation {
  handle: Handler;
  access: (match: Match) => Access[];
  /** what the audit log calls a successful call (pushes and deletes are recorded) */
  audit?: 'push' | 'delete';
  /** adjusts the request when an optional access was refused */
  refused?: (match: Match) => void;
  /** the bytes it moves are a pull (sent) or a push (received), in the per-namespace metrics */
  transfer?: 'pull' | 'push';
}

export interface Route {
  id: string;
  /** the route as metrics and traces name it: the path with the name and reference left out */
  template: string;
  /** matched against the raw path; group 1 is the repository name, group 2 the reference */
  pattern: RegExp;
  /** false for routes without a repository name */
  named: boolean;
  methods: Partial<Record<Method, Operation>>;
}

const repo =
  (...actions: Access['actions']) =>
  (m: Match): Access[] => [{ type: 'repository', name: m.name, actions }];
/** Anyone who presented valid credentials (or an anonymous token, as distribution answers): how clients find out how to log in. */
const loggedIn = (): Access[] => [{ type: 'registry', name: 'credentials', actions: [] }];

/** A mount also reads the source repository; without pull there, it becomes a plain upload. */
const pushOrMount = (m: Match): Access[] => {
  const from = m.query.get('from');
  const accesses = repo('pull', 'push')(m);
  if (m.query.get('mount') !== null && from) accesses.push({ type: 'repository', name: checkName(from), actions: ['pull'], optional: true });
  return accesses;
};
const dropMount = (m: Match) => {
  m.query.delete('mount');
  m.query.delete('from');
};

// Order matters: `…/blobs/uploads/…` must be tried before `…/blobs/<digest>`.
export const routes: Route[] = [
  {
    id: 'base',
    template: '/v2/',
    pattern: /^\/v2\/?$/,
    named: false,
    methods: { GET: { handle: apiBase, access: loggedIn }, HEAD: { handle: apiBase, access: loggedIn } },
  },
  {
    id: 'catalog',
    template: '/v2/_catalog',
    pattern: /^\/v2\/_catalog$/,
    named: false,
    methods: { GET: { handle: catalog, access: () => [{ type: 'registry', name: 'catalog', actions: ['*'] }] } },
  },
  {
    id: 'upload-start',
    template: '/v2/:name/blobs/uploads/',
    pattern: /^\/v2\/(.+)\/blobs\/uploads\/?$/,
    named: true,
    methods: { POST: { handle: startUpload, access: pushOrMount, refused: dropMount, transfer: 'push' } },
  },
  {
    id: 'upload',
    template: '/v2/:name/blobs/uploads/:uuid',
    pattern: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/,
    named: true,
    methods: {
      GET: { handle: uploadStatus, access: repo('pull', 'push') },
      PATCH: { handle: patchUpload, access: repo('pull', 'push'), transfer: 'push' },
      PUT: { handle: finishUpload, access: repo('pull', 'push'), transfer: 'push' },
      DELETE: { handle: cancelUpload, access: repo('pull', 'push') },
    },
  },
  {
    id: 'blob',
    template: '/v2/:name/blobs/:digest',
    pattern: /^\/v2\/(.+)\/blobs\/([^/]+)$/,
    named: true,
    methods: {
      GET: { handle: getBlob, access: repo('pull'), transfer: 'pull' },
      HEAD: { handle: getBlob, access: repo('pull') },
      DELETE: { handle: deleteBlob, access: repo('delete'), audit: 'delete' },
    },
  },
  {
    id: 'manifest',
    template: '/v2/:name/manifests/:reference',
    pattern: /^\/v2\/(.+)\/manifests\/([^/]+)$/,
    named: true,
    methods: {
      GET: { handle: getManifest, access: repo('pull'), transfer: 'pull' },
      HEAD: { handle: getManifest, access: repo('pull') },
      PUT: { handle: putManifest, access: repo('pull', 'push'), audit: 'push', transfer: 'push' },
      DELETE: { handle: deleteManifest, access: repo('delete'), audit: 'delete' },
    },
  },
  {
    id: 'tags',
    template: '/v2/:name/tags/list',
    pattern: /^\/v2\/(.+)\/tags\/list$/,
    named: true,
    methods: { GET: { handle: listTags, access: repo('pull') } },
  },
  {
    id: 'referrers',
    template: '/v2/:name/referrers/:digest',
    pattern: /^\/v2\/(.+)\/referrers\/([^/]+)$/,
    named: true,
    methods: { GET: { handle: referrers, access: repo('pull') } },
  },
];
