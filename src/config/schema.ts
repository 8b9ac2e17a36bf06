/** The one configuration schema. Every key has a default, so no file is needed. */
import { isIP } from 'node:net';
import path from 'node:path';
import { z } from 'zod';

const keylessIdentity = z.strictObject({
  identity: z.string().min(1).optional(),
  identityPattern: z.string().min(1).optional(),
  issuer: z.string().min(1).optional(),
  issuerPattern: z.string().min(1).optional(),
});

/** A namespace's trust in the config file: PEM text inline, or paths to files holding it. */
const namespaceTrustFile = z.strictObject({
  sigstore: z
    .strictObject({
      /** `pem`: the PEM text or a path to a .pem file */
      publicKeys: z.array(z.strictObject({ name: z.string().min(1), pem: z.string().min(1) })).default([]),
      identities: z.array(keylessIdentity).default([]),
      /** path to a Sigstore trusted_root.json (default: trust.sigstoreTrustedRoot) */
      trustedRoot: z.string().min(1).optional(),
    })
    .optional(),
  notary: z
    .strictObject({
      /** `certificates`: PEM texts or paths to PEM files */
      trustStores: z
        .array(z.strictObject({ type: z.enum(['ca', 'signingAuthority', 'tsa']), name: z.string().min(1), certificates: z.array(z.string().min(1)).min(1) }))
        .default([]),
      /** path to a notation trustpolicy.json */
      trustPolicy: z.string().min(1).optional(),
    })
    .optional(),
});

export type NamespaceTrustFile = z.infer<typeof namespaceTrustFile>;

/** proxy-addr's names for address ranges, as fastify's trustProxy takes them */
const namedRanges = ['loopback', 'linklocal', 'uniquelocal'];

/** An address (10.0.0.7, ::1), a CIDR (10.0.0.0/8, fd00::/8) or one of proxy-addr's named ranges. */
export function isAddressOrRange(value: string): boolean {
  if (namedRanges.includes(value)) return true;
  const [address = '', prefix, ...rest] = value.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

const webhooksDefaults = {
  allowPrivateNetworks: false,
  timeoutSeconds: 10,
  concurrency: 16,
  perWebhook: 4,
  backoff: { initialSeconds: 1, maxSeconds: 300 },
  giveUpAfterSeconds: 3 * 86_400,
  maxQueued: 10_000,
  pollSeconds: 1,
  leaseSeconds: 60,
  deliveryLog: { keepDays: 7, keepPerWebhook: 10_000 },
};

const webhooksConfig = z
  .strictObject({
    /** let webhooks reach loopback, private and link-local addresses (off: refused when set and when connecting) */
    allowPrivateNetworks: z.boolean().default(false),
    /** the registry's URL as receivers know it; the CloudEvents source is <registryUrl>/<repository> (default: the origin of auth.realm, else http://<listen>) */
    registryUrl: z.url({ protocol: /^https?$/, error: 'insight.webhooks.registryUrl is an http(s) URL' }).optional(),
    /** one delivery attempt's deadline: connecting, sending and reading the answer */
    timeoutSeconds: z.number().positive().max(300).default(10),
    /** outbound requests at once, per replica */
    concurrency: z.number().int().min(1).max(1024).default(16),
    /** repositories of one webhook delivered at once (one event at a time per repository) */
    perWebhook: z.number().int().min(1).max(64).default(4),
    /** the wait after a failed attempt: initialSeconds, doubling up to maxSeconds */
    backoff: z
      .strictObject({ initialSeconds: z.number().positive().default(1), maxSeconds: z.number().positive().default(300) })
      .refine((b) => b.maxSeconds >= b.initialSeconds, 'insight.webhooks.backoff.maxSeconds is at least initialSeconds')
      .default({ initialSeconds: 1, maxSeconds: 300 }),
    /** an event that has waited this long is dropped at its next failure (and logged so) */
    giveUpAfterSeconds: z
      .number()
      .positive()
      .default(3 * 86_400),
    /** events queued per webhook at most; beyond that the feed waits */
    maxQueued: z.number().int().min(1).max(1_000_000).default(10_000),
    /** how often each replica looks for events to deliver */
    pollSeconds: z.number().positive().max(60).default(1),
    /** one replica delivers a webhook at a time, under a lease of this length */
    leaseSeconds: z.number().positive().max(3600).default(60),
    /** attempts older than keepDays, or beyond a webhook's newest keepPerWebhook, leave the delivery log */
    deliveryLog: z
      .strictObject({ keepDays: z.number().positive().default(7), keepPerWebhook: z.number().int().min(1).default(10_000) })
      .default({ keepDays: 7, keepPerWebhook: 10_000 }),
  })
  .refine((w) => w.leaseSeconds > 3 * w.timeoutSeconds, 'insight.webhooks.leaseSeconds must be more than three times timeoutSeconds')
  .default(webhooksDefaults);

/** An address (10.0.0.7) or a CIDR (10.0.0.0/8, fd00::/8): no named ranges. */
const isAddressOrCidr = (value: string): boolean => isAddressOrRange(value) && !namedRanges.includes(value);

const costDefaults = {
  currency: 'USD',
  storagePerGbMonth: 0,
  egress: { perGb: 0, networks: [] },
  requests: { push: 0, pull: 0 },
  sampleSeconds: 3600,
  budgetCheckSeconds: 300,
  focus: { provider: 'Custody', invoiceIssuer: 'Custody', billingAccountId: 'custody', billingAccountName: 'Custody', serviceName: 'Custody registry' },
};

const price = (what: string) => z.number(`${what} is a number`).nonnegative(`${what} is 0 or more`).finite();

/** The price model and the cost jobs (docs/insight.md, Cost). */
const costConfig = z
  .strictObject({
    /** ISO 4217 code of every price, budget and cost */
    currency: z
      .string()
      .regex(/^[A-Z]{3}$/, 'insight.cost.currency is an ISO 4217 code such as USD or EUR')
      .default('USD'),
    /** per GB (10^9 bytes) of fair storage held for a whole calendar month */
    storagePerGbMonth: price('insight.cost.storagePerGbMonth').default(0),
    egress: z
      .strictObject({
        /** per GB (10^9 bytes) pulled, to an address no network below contains */
        perGb: price('insight.cost.egress.perGb').default(0),
        /** networks with their own price; the first whose CIDRs contain the client address decides */
        networks: z
          .array(
            z.strictObject({
              name: z
                .string()
                .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'a network name is lowercase letters, digits and . _ -')
                .refine((n) => n !== 'default', 'the network name default is taken: it is the rest'),
              cidrs: z.array(z.string().refine(isAddressOrCidr, 'a network takes addresses or CIDRs, such as 10.0.0.0/8 or fd00::/8')).min(1),
              perGb: price("a network's perGb"),
            }),
          )
          .refine((l) => new Set(l.map((n) => n.name)).size === l.length, 'network names are unique')
          .default([]),
      })
      .default({ perGb: 0, networks: [] }),
    /** per request: each recorded push or pull (a manifest or blob request) */
    requests: z
      .strictObject({ push: price('insight.cost.requests.push').default(0), pull: price('insight.cost.requests.pull').default(0) })
      .default({ push: 0, pull: 0 }),
    /** how often one replica samples every repository's fair stored bytes; storage cost integrates the samples */
    sampleSeconds: z.number().int().min(1).max(86_400).default(3600),
    /** how often budgets are compared with the month's cost (a crossing is announced once per month) */
    budgetCheckSeconds: z.number().int().min(1).max(86_400).default(300),
    /** the fixed columns of the FOCUS export */
    focus: z
      .strictObject({
        /** ProviderName and PublisherName */
        provider: z.string().min(1).default('Custody'),
        /** InvoiceIssuerName: who charges the teams */
        invoiceIssuer: z.string().min(1).default('Custody'),
        billingAccountId: z.string().min(1).default('custody'),
        billingAccountName: z.string().min(1).default('Custody'),
        serviceName: z.string().min(1).default('Custody registry'),
        /** RegionId and RegionName (null when unset) */
        region: z.string().min(1).optional(),
      })
      .default(costDefaults.focus),
  })
  .default(costDefaults);

export const configSchema = z.strictObject({
  /** HOST:PORT to listen on; [::1]:5000 for IPv6 */
  listen: z
    .string()
    .regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, 'listen must be HOST:PORT')
    .default('0.0.0.0:5000'),
  /** where the SQLite database and the filesystem blob store live unless URLs say otherwise */
  dataDir: z.string().min(1).default('./custody-data'),
  database: z
    .strictObject({
      /** postgres://user:pass@host/db, or a path to an SQLite file (default: <dataDir>/custody.db) */
      url: z.string().min(1).optional(),
      /** PostgreSQL: MiB of manifests kept in memory for GETs, kept current by LISTEN/NOTIFY; 0: none */
      manifestCacheMiB: z.number().int().min(0).max(4096).default(64),
    })
    .default({ manifestCacheMiB: 64 }),
  storage: z
    .strictObject({
      /** a directory, file:///dir, memory:// or s3://bucket/prefix?region=…&endpoint=…&forcePathStyle=true (default: <dataDir>/blobs) */
      url: z.string().min(1).optional(),
      /** fsync blobs before acknowledging them: survives power loss, not only crashes */
      fsync: z.boolean().default(true),
      /**
       * answer a whole-blob GET with 307 to a URL of the storage itself (S3: presigned GetObject, valid
       * 20 minutes), as distribution does; HEAD and ranged GETs are served as before. Drivers without
       * such URLs (fs, memory) ignore it
       */
      redirect: z.boolean().default(false),
    })
    .default({ fsync: true, redirect: false }),
  tls: z
    .strictObject({
      /** path to the PEM certificate (chain) served for HTTPS; with `key`, Custody serves HTTPS instead of HTTP */
      certificate: z.string().min(1).optional(),
      /** path to the PEM private key of the certificate */
      key: z.string().min(1).optional(),
      /** how often the two files are read again to pick up a renewed certificate (SIGHUP reloads at once) */
      reloadSeconds: z.number().int().min(1).max(86_400).default(60),
    })
    .refine((t) => (t.certificate === undefined) === (t.key === undefined), 'tls.certificate and tls.key go together: set both or neither')
    .default({ reloadSeconds: 60 }),
  /**
   * The proxies and load balancers whose X-Forwarded-For, -Proto and -Host are believed:
   * addresses or CIDRs (and proxy-addr's `loopback`, `linklocal`, `uniquelocal`). From anyone
   * else those headers are ignored. Empty: the TCP peer is the client.
   */
  trustedProxies: z.array(z.string().refine(isAddressOrRange, 'trustedProxies takes addresses or CIDRs, such as 10.0.0.7 or 10.0.0.0/8')).default([]),
  log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }).default({ level: 'info' }),
  limits: z
    .strictObject({
      /** largest manifest accepted, in bytes (the spec's recommended 4 MiB) */
      manifestBytes: z
        .number()
        .int()
        .positive()
        .default(4 * 1024 * 1024),
    })
    .default({ manifestBytes: 4 * 1024 * 1024 }),
  uploads: z
    .strictObject({
      /** an upload untouched for this long is removed, with its parts */
      expireAfterSeconds: z
        .number()
        .int()
        .positive()
        .default(24 * 3600),
    })
    .default({ expireAfterSeconds: 24 * 3600 }),
  auth: z
    .strictObject({
      /** the `service` of the Docker token flow, and the audience of its tokens */
      service: z.string().min(1).default('custody'),
      /** absolute URL of /token in challenges, e.g. https://registry.example.com/token (default: from the request's Host) */
      realm: z.url().optional(),
      /** how long a token from /token lives */
      tokenTtlSeconds: z.number().int().min(30).max(86_400).default(300),
      /** the first admin's password, used only when the database has no user (default: generated and logged once) */
      adminPassword: z.string().min(8).optional(),
      /** failed logins allowed per account, and per client address, within the window; then 429 */
      loginFailures: z
        .strictObject({
          max: z.number().int().positive().default(10),
          maxPerAddress: z.number().int().positive().default(50),
          windowSeconds: z.number().int().positive().max(86_400).default(300),
        })
        .default({ max: 10, maxPerAddress: 50, windowSeconds: 300 }),
      /** requests per second allowed per identity (anonymous: per address); 0 for no limit */
      requestsPerSecond: z.number().nonnegative().default(0),
      /** PostgreSQL: replicas count requests together, so the rate holds across them (false: each replica allows the whole rate) */
      shareRequestRates: z.boolean().default(true),
    })
    .default({
      service: 'custody',
      tokenTtlSeconds: 300,
      loginFailures: { max: 10, maxPerAddress: 50, windowSeconds: 300 },
      requestsPerSecond: 0,
      shareRequestRates: true,
    }),
  audit: z
    .strictObject({
      /** audit events older than this are deleted */
      retentionDays: z.number().int().positive().default(90),
    })
    .default({ retentionDays: 90 }),
  trust: z
    .strictObject({
      /** classify and verify signatures, attestations and SBOMs as they are pushed */
      enabled: z.boolean().default(true),
      /** verifications run at once per replica */
      workers: z.number().int().min(1).max(32).default(2),
      /** path to a Sigstore trusted_root.json for namespaces that name none (keyless verification needs one) */
      sigstoreTrustedRoot: z.string().min(1).optional(),
      /** trust per namespace; a namespace's trust set through /api/v1 replaces what is here */
      namespaces: z.record(z.string(), namespaceTrustFile).default({}),
    })
    .default({ enabled: true, workers: 2, namespaces: {} }),
  tuf: z
    .strictObject({
      /** how long each role's metadata stays valid; timestamp and snapshot are re-signed before they expire */
      rootExpirySeconds: z
        .number()
        .int()
        .positive()
        .default(365 * 86_400),
      targetsExpirySeconds: z
        .number()
        .int()
        .positive()
        .default(90 * 86_400),
      snapshotExpirySeconds: z
        .number()
        .int()
        .positive()
        .default(7 * 86_400),
      timestampExpirySeconds: z.number().int().positive().default(86_400),
    })
    .default({ rootExpirySeconds: 365 * 86_400, targetsExpirySeconds: 90 * 86_400, snapshotExpirySeconds: 7 * 86_400, timestampExpirySeconds: 86_400 }),
  policy: z
    .strictObject({
      /** how often a replica looks for policies changed elsewhere */
      reloadSeconds: z.number().positive().max(3600).default(2),
      /** decisions and recorded inputs older than this are deleted */
      decisionRetentionDays: z.number().int().positive().default(30),
      /** keep one decision input per identity, artifact and hour, for `custody policy simulate` */
      recordInputs: z.boolean().default(true),
      /** OPA Wasm policies run in a pool of worker threads, each evaluation within these limits */
      opa: z
        .strictObject({
          workers: z.number().int().min(1).max(16).default(2),
          memoryMiB: z.number().int().min(1).max(1024).default(32),
          timeoutMs: z.number().int().min(10).max(60_000).default(1000),
        })
        .default({ workers: 2, memoryMiB: 32, timeoutMs: 1000 }),
    })
    .default({ reloadSeconds: 2, decisionRetentionDays: 30, recordInputs: true, opa: { workers: 2, memoryMiB: 32, timeoutMs: 1000 } }),
  /** garbage collection, retention and quotas (docs/lifecycle.md) */
  lifecycle: z
    .strictObject({
      gc: z
        .strictObject({
          /** blobs and manifests written or linked more recently than this are never collected (a push in progress) */
          graceSeconds: z.number().int().min(0).default(3600),
          /** how often a collection runs on its own; 0: only with `custody gc` */
          intervalSeconds: z.number().int().min(0).default(3600),
          /** rows per sweep transaction */
          batchSize: z.number().int().min(1).max(10_000).default(500),
          /** how often a running collection records that it is alive; after three missed beats another process resumes it */
          heartbeatSeconds: z.number().positive().max(600).default(5),
          /** while requests are being served, the share of the time a collection may work; it rests the rest */
          busyShare: z.number().gt(0).max(1).default(0.1),
        })
        .default({ graceSeconds: 3600, intervalSeconds: 3600, batchSize: 500, heartbeatSeconds: 5, busyShare: 0.1 }),
      retention: z
        .strictObject({
          /** how often retention runs over every rule set on its own (one replica at a time); 0: only when started through the API */
          intervalSeconds: z.number().int().min(0).default(86_400),
          /** finished runs older than this are deleted from the run log */
          keepRunsDays: z.number().int().positive().default(90),
        })
        .default({ intervalSeconds: 86_400, keepRunsDays: 90 }),
    })
    .default({
      gc: { graceSeconds: 3600, intervalSeconds: 3600, batchSize: 500, heartbeatSeconds: 5, busyShare: 0.1 },
      retention: { intervalSeconds: 86_400, keepRunsDays: 90 },
    }),
  /** the periodic jobs on the shared stores, each run by one replica per interval (docs/deploy.md, Several replicas) */
  jobs: z
    .strictObject({
      /** a running job's lease lasts this long unrenewed: a replica that died mid-run has its job taken over this long after */
      leaseSeconds: z.number().positive().max(3600).default(60),
      /** how often the audit log, the policy decision log, usage events and webhook deliveries are pruned */
      pruneSeconds: z.number().positive().max(86_400).default(3600),
    })
    .default({ leaseSeconds: 60, pruneSeconds: 3600 }),
  /** usage events and their rollups, metrics (docs/insight.md) */
  insight: z
    .strictObject({
      events: z
        .strictObject({
          /** record every push, pull, delete, login, token issue and policy decision */
          enabled: z.boolean().default(true),
          /** events older than this are deleted (their rollups stay) */
          retentionDays: z.number().int().positive().default(30),
          /**
           * how often buffered events are written: 50 ms, because an event held longer outlives
           * the young generation's collections and is promoted, and the old generation's
           * collections then cost every request more (docs/insight.md)
           */
          flushMs: z.number().int().min(10).max(60_000).default(250),
          /** a batch is written as soon as this many events wait */
          batchSize: z.number().int().min(1).max(10_000).default(1000),
          /** the most events held while the database is behind; past it new events are dropped and counted in a warning */
          maxBuffered: z.number().int().min(1).max(10_000_000).default(100_000),
        })
        .default({ enabled: true, retentionDays: 30, flushMs: 250, batchSize: 1000, maxBuffered: 100_000 }),
      rollups: z
        .strictObject({
          /** hourly and daily rollups older than this are deleted */
          retentionDays: z.number().int().positive().default(400),
        })
        .default({ retentionDays: 400 }),
      /** Prometheus metrics at GET /metrics (docs/insight.md, Metrics) */
      metrics: z
        .strictObject({
          /** keep the figures and serve /metrics; false: no metrics hook on the request path, /metrics is a 404 */
          enabled: z.boolean().default(true),
          /** who may read /metrics: `admin` (administrators, and tokens with the metrics scope) or `open` (anyone who reaches it) */
          access: z.enum(['admin', 'open'], 'insight.metrics.access is admin or open').default('admin'),
          /** namespaces with their own series in the per-namespace metrics; the others are added up as `other` */
          topNamespaces: z.number().int().min(0).max(1000).default(20),
        })
        .default({ enabled: true, access: 'admin', topNamespaces: 20 }),
      /** webhooks: CloudEvents over HTTP, per namespace (docs/insight.md, Webhooks) */
      webhooks: webhooksConfig,
      /** price models, cost reports, budgets (docs/insight.md, Cost) */
      cost: costConfig,
    })
    .default({
      events: { enabled: true, retentionDays: 30, flushMs: 250, batchSize: 1000, maxBuffered: 100_000 },
      rollups: { retentionDays: 400 },
      metrics: { enabled: true, access: 'admin', topNamespaces: 20 },
      webhooks: webhooksDefaults,
      cost: costDefaults,
    }),
});

export type Config = z.infer<typeof configSchema>;

export function databaseUrl(config: Config): string {
  return config.database.url ?? path.join(config.dataDir, 'custody.db');
}

export function storageUrl(config: Config): string {
  return config.storage.url ?? path.join(config.dataDir, 'blobs');
}

/** How the blob store is opened, wherever it is opened (buildApp, the start-up checks). */
export function blobStoreOptions(config: Config): { fsync: boolean; uploadExpirySeconds: number } {
  return { fsync: config.storage.fsync, uploadExpirySeconds: config.uploads.expireAfterSeconds };
}

/** A URL as it may be shown in logs and errors: a password in it (or in ?password=) becomes ***. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@').replace(/([?&]password=)[^&]*/gi, '$1***');
}

export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}
