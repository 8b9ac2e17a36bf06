/**
 * What `custody serve` needs before it can answer, each failure as one line that names the value
 * and the setting it came from (flag, CUSTODY_* variable, config key or default): the data
 * directory, the database, the blob store and the listening address. No stack traces: these are
 * an operator's mistakes or an unreachable service, not bugs.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { settingSource } from '../config/load.ts';
import { blobStoreOptions, databaseUrl, parseListen, redactUrl, storageUrl, type Config } from '../config/schema.ts';
import type { MetaStore } from '../meta/metastore.ts';
import { openMetaStore, type OpenOptions } from '../meta/open.ts';
import type { BlobStore } from '../storage/blobstore.ts';
import { openBlobStore } from '../storage/open.ts';

/** A start-up failure whose message is the whole story: printed as one line, exit code 1. */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

/** How long a database may take to answer at start before Custody gives up on it. */
const databaseTimeoutMs = 30_000;

const fsReasons: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'the file system is read-only',
  ENOTDIR: 'part of the path is a file, not a directory',
  EEXIST: 'it is a file, not a directory',
  ENOSPC: 'no space left on the device',
  EISDIR: 'it is a directory',
  ENOENT: 'no such file or directory',
};

const listenReasons: Record<string, string> = {
  EADDRINUSE: 'the address is already in use (is another server running there?)',
  EADDRNOTAVAIL: 'no network interface of this machine has that address',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name does not resolve',
};

/** An error's own words, short: a known errno as a phrase, an AggregateError as its parts. */
export function reason(err: unknown, phrases: Record<string, string> = fsReasons): string {
  if (err instanceof AggregateError && err.errors.length > 0) return [...new Set(err.errors.map((e) => reason(e, phrases)))].join('; ');
  const e = err as NodeJS.ErrnoException | undefined;
  const phrase = e?.code === undefined ? undefined : phrases[e.code];
  if (phrase !== undefined) return phrase;
  const text = e instanceof Error ? e.message || e.code || e.name : String(err);
  return text.split('\n')[0] ?? text;
}

/** Creates the data directory (0700: the database in it holds private keys) and checks it takes files. */
async function checkDataDir(config: Config): Promise<void> {
  const dir = path.resolve(config.dataDir);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await probeWrite(dir);
  } catch (err) {
    throw new StartupError(`cannot use the data directory ${dir} (${settingSource(config, 'dataDir', { flag: '--data-dir' })}): ${reason(err)}`);
  }
}

/** Writes and removes a file: mkdir succeeds on a directory it cannot write into. */
async function probeWrite(dir: string): Promise<void> {
  const probe = path.join(dir, `.custody-write-test-${randomBytes(6).toString('hex')}`);
  await writeFile(probe, '', { mode: 0o600 });
  await rm(probe, { force: true });
}

export function isPostgres(url: string): boolean {
  return /^postgres(ql)?:\/\//.test(url);
}

/** The database and blob store as the start-up log names them (no passwords). */
export function storesInUse(config: Config): { database: { engine: string; url: string }; storage: { driver: string; url: string } } {
  const db = databaseUrl(config);
  const blobs = storageUrl(config);
  return {
    database: isPostgres(db) ? { engine: 'postgres', url: redactUrl(db) } : { engine: 'sqlite', url: path.resolve(db.replace(/^sqlite:\/\//, '')) },
    storage:
      blobs === 'memory://'
        ? { driver: 'memory', url: blobs }
        : blobs.startsWith('s3://')
          ? { driver: 's3', url: blobs }
          : { driver: 'filesystem', url: blobs.includes('://') ? blobs : path.resolve(blobs) },
  };
}

/** Who hears of PostgreSQL connections failing while the server runs (src/meta/open.ts). */
export type DatabaseNotices = Pick<OpenOptions, 'onIdleError' | 'onFeedChange'>;

/** Opens the metadata store; one line naming the (redacted) URL and its setting when it fails. */
export async function openDatabase(config: Config, notices: DatabaseNotices): Promise<MetaStore> {
  const url = databaseUrl(config);
  const shown = storesInUse(config).database;
  const source = settingSource(config, 'database.url', { defaultIs: '<dataDir>/custody.db' });
  const what = `the ${shown.engine === 'postgres' ? 'PostgreSQL' : 'SQLite'} database ${shown.url} (${source})`;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      openMetaStore(url, { ...notices, manifestCacheMiB: config.database.manifestCacheMiB }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${databaseTimeoutMs / 1000} s`)), databaseTimeoutMs);
        timer.unref();
      }),
    ]);
  } catch (err) {
    throw new StartupError(`cannot open ${what}: ${withoutSecret(reason(err), url)}`);
  } finally {
    clearTimeout(timer);
  }
}

/** Opens the blob store and, for a directory, checks it takes files. */
export async function openBlobs(config: Config): Promise<BlobStore> {
  const url = storageUrl(config);
  const shown = storesInUse(config).storage.url;
  try {
    const blobs = await openBlobStore(url, blobStoreOptions(config));
    if (url !== 'memory://' && !url.startsWith('s3://')) await probeWrite(url.startsWith('file://') ? new URL(url).pathname : path.resolve(url));
    return blobs;
  } catch (err) {
    throw new StartupError(`cannot use the blob store ${shown} (${settingSource(config, 'storage.url', { defaultIs: '<dataDir>/blobs' })}): ${reason(err)}`);
  }
}

/** The data directory, then the database and the blob store; what buildApp takes as parts. */
export async function openStores(config: Config, notices: DatabaseNotices): Promise<{ meta: MetaStore; blobs: BlobStore }> {
  await checkDataDir(config);
  const meta = await openDatabase(config, notices);
  try {
    return { meta, blobs: await openBlobs(config) };
  } catch (err) {
    await meta.close().catch(() => {});
    throw err;
  }
}

/** app.listen, with a failure as one line naming the address and the setting. */
export async function listen(app: FastifyInstance, config: Config): Promise<void> {
  const { host, port } = parseListen(config.listen);
  try {
    await app.listen({ host, port });
  } catch (err) {
    throw new StartupError(`cannot listen on ${config.listen} (${settingSource(config, 'listen', { flag: '--listen' })}): ${reason(err, listenReasons)}`);
  }
}

/** A database's error text could quote its URL; the password never goes into a log. */
function withoutSecret(text: string, url: string): string {
  let password: string | undefined;
  try {
    password = decodeURIComponent(new URL(url).password) || undefined;
  } catch {
    password = undefined;
  }
  return password === undefined ? text : text.replaceAll(password, '***');
}
