/**
 * How the CLI talks to /api/v1: fetch with Basic credentials, the server's error message on
 * failure, and the stored login in `$XDG_CONFIG_HOME/custody/credentials.json` (directory 0700,
 * file 0600), which holds a personal token, never a password.
 */
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';

/** An error to show the user as one line; the command exits with 1. */
export class CliError extends Error {}

export interface Credentials {
  url: string;
  username: string;
  token: string;
}

/** Checked by hand: importing zod would take longer than the rest of a client command's start. */
function asCredentials(value: unknown): Credentials | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { url, username, token } = value as Record<string, unknown>;
  return typeof url === 'string' && typeof username === 'string' && typeof token === 'string' ? { url, username, token } : undefined;
}

export function credentialsFile(): string {
  const base = process.env.XDG_CONFIG_HOME || path.join(homedir(), '.config');
  return path.join(base, 'custody', 'credentials.json');
}

export async function readCredentials(): Promise<Credentials | undefined> {
  let text: string;
  try {
    text = await readFile(credentialsFile(), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const credentials = asCredentials(parsed);
  if (!credentials) throw new CliError(`${credentialsFile()} is damaged: run custody login URL again`);
  return credentials;
}

export async function writeCredentials(credentials: Credentials): Promise<void> {
  const file = credentialsFile();
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  // Written whole under another name first, so the file is never seen half written or readable by others.
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  await chmod(temp, 0o600);
  await rename(temp, file);
}

export async function removeCredentials(): Promise<void> {
  await rm(credentialsFile(), { force: true });
}

/** `http(s)://host[:port][/prefix]` without a trailing slash. */
export function registryUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CliError(`invalid URL ${raw}: give it with http:// or https://, e.g. https://registry.example.com`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(`invalid URL ${raw}: use http:// or https://`);
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

export class Client {
  readonly url: string;
  private readonly authorization: string;
  /** added to authentication failures, e.g. how to log in again */
  private readonly hint: string;

  constructor(url: string, username: string, secret: string, hint = '') {
    this.url = url;
    this.authorization = `Basic ${Buffer.from(`${username}:${secret}`).toString('base64')}`;
    this.hint = hint;
  }

  /**
   * Sends a request to <url><path> (e.g. /v2/…), or to an absolute URL the server gave (a
   * Location), with the credentials; the answer, whatever its status.
   */
  async send(pathname: string, init: { method?: string; headers?: Record<string, string>; body?: string | Uint8Array<ArrayBuffer> } = {}): Promise<Response> {
    const absolute = /^https?:\/\//.test(pathname);
    // the credentials go to this registry only, never to another host a Location names
    if (absolute && new URL(pathname).origin !== new URL(this.url).origin)
      throw new CliError(`${this.url} sent the CLI to another host (${new URL(pathname).origin}): not following`);
    try {
      return await fetch(absolute ? pathname : `${this.url}${pathname}`, {
        method: init.method ?? 'GET',
        headers: { authorization: this.authorization, ...init.headers },
        body: init.body,
      });
    } catch (err) {
      const cause = (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message;
      throw new CliError(`cannot reach ${this.url}: ${cause}`);
    }
  }

  /** The server's message for a failed answer (API or /v2 JSON), with the login hint on 401. */
  failure(res: Response, text: string): CliError {
    let message = `${res.status} ${res.statusText}`;
    try {
      const parsed = JSON.parse(text) as { error?: { message?: unknown }; errors?: { message?: unknown }[] };
      const said = parsed.error?.message ?? parsed.errors?.[0]?.message;
      if (typeof said === 'string' && said !== '') message = said;
    } catch {
      // not JSON: keep the status line
    }
    return new CliError(res.status === 401 && this.hint ? `${message}; ${this.hint}` : message);
  }

  /** Calls /api/v1<path>; the parsed JSON answer, or undefined for 204. */
  async call<T = unknown>(method: string, apiPath: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await this.send(`/api/v1${apiPath}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw this.failure(res, text);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }
}

/** A client with the stored login, or the error that says how to log in. */
export async function loggedIn(): Promise<Client> {
  const credentials = await readCredentials();
  if (!credentials) throw new CliError('not logged in: run custody login URL');
  return new Client(credentials.url, credentials.username, credentials.token, `run custody login ${credentials.url} again`);
}
