/**
 * Loading the configuration: the YAML file (if any), then CUSTODY_* environment variables, then
 * command-line flags, each overriding the one before; validated once, at start.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { configSchema, type Config } from './schema.ts';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Raw = Record<string, unknown>;

/** Environment variables and the config keys they set; a `list` is comma-separated. */
export const environment: Record<string, { key: string[]; type: 'string' | 'boolean' | 'list' | 'number' }> = {
  CUSTODY_LISTEN: { key: ['listen'], type: 'string' },
  CUSTODY_DATA_DIR: { key: ['dataDir'], type: 'string' },
  CUSTODY_DATABASE_URL: { key: ['database', 'url'], type: 'string' },
  CUSTODY_STORAGE_URL: { key: ['storage', 'url'], type: 'string' },
  CUSTODY_STORAGE_FSYNC: { key: ['storage', 'fsync'], type: 'boolean' },
  CUSTODY_STORAGE_REDIRECT: { key: ['storage', 'redirect'], type: 'boolean' },
  CUSTODY_LOG_LEVEL: { key: ['log', 'level'], type: 'string' },
  CUSTODY_ADMIN_PASSWORD: { key: ['auth', 'adminPassword'], type: 'string' },
  CUSTODY_AUTH_REALM: { key: ['auth', 'realm'], type: 'string' },
  CUSTODY_TRUST_ENABLED: { key: ['trust', 'enabled'], type: 'boolean' },
  CUSTODY_SIGSTORE_TRUSTED_ROOT: { key: ['trust', 'sigstoreTrustedRoot'], type: 'string' },
  CUSTODY_TLS_CERT: { key: ['tls', 'certificate'], type: 'string' },
  CUSTODY_TLS_KEY: { key: ['tls', 'key'], type: 'string' },
  CUSTODY_TRUSTED_PROXIES: { key: ['trustedProxies'], type: 'list' },
  CUSTODY_GC_GRACE_SECONDS: { key: ['lifecycle', 'gc', 'graceSeconds'], type: 'number' },
  CUSTODY_EVENTS_ENABLED: { key: ['insight', 'events', 'enabled'], type: 'boolean' },
  CUSTODY_METRICS_ENABLED: { key: ['insight', 'metrics', 'enabled'], type: 'boolean' },
  CUSTODY_METRICS_ACCESS: { key: ['insight', 'metrics', 'access'], type: 'string' },
};

/** Where each setting of a loaded configuration came from, by dotted key; unset keys are defaults. */
const origins = new WeakMap<Config, Map<string, string>>();

/**
 * Where a setting came from, for messages that name it: `--listen`, `CUSTODY_DATABASE_URL`,
 * `database.url in custody.yaml`; undefined when it has its default.
 */
export function originOf(config: Config, key: string): string | undefined {
  return origins.get(config)?.get(key);
}

/**
 * The parenthesis a start-up error puts after a setting's value: `from CUSTODY_LISTEN`, or for a
 * default, every way to change it: `the default; set --listen, CUSTODY_LISTEN or listen in the
 * config file`. `defaultIs` names a default that is not the value shown (`<dataDir>/custody.db`).
 */
export function settingSource(config: Config, key: string, options: { flag?: string; defaultIs?: string } = {}): string {
  const origin = originOf(config, key);
  if (origin !== undefined) return `from ${origin}`;
  const variable = Object.entries(environment).find(([, v]) => v.key.join('.') === key)?.[0];
  const ways = [options.flag, variable, `${key} in the config file`].filter((w): w is string => w !== undefined);
  const which = `${ways.slice(0, -1).join(', ')}${ways.length > 1 ? ' or ' : ''}${ways[ways.length - 1]}`;
  return `the default${options.defaultIs === undefined ? '' : ` ${options.defaultIs}`}; set ${which}`;
}

/** The leaves of a parsed file as dotted keys (arrays are leaves). */
function leaves(node: unknown, prefix: string[] = []): string[] {
  if (typeof node !== 'object' || node === null || Array.isArray(node)) return prefix.length > 0 ? [prefix.join('.')] : [];
  return Object.entries(node).flatMap(([k, v]) => leaves(v, [...prefix, k]));
}

const flagName = (key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

export async function loadConfig(options: { file?: string; env?: NodeJS.ProcessEnv; overrides?: Raw } = {}): Promise<Config> {
  let raw: Raw = {};
  const from = new Map<string, string>();
  if (options.file) {
    let text: string;
    try {
      text = await readFile(options.file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${options.file}: ${(err as Error).message}`);
    }
    // Loaded only when a file is given, like pg: memory the default setup does not need.
    const { parse: parseYaml } = await import('yaml');
    try {
      raw = (parseYaml(text) as Raw | null) ?? {};
    } catch (err) {
      throw new ConfigError(`config file ${options.file} is not valid YAML: ${(err as Error).message}`);
    }
    for (const key of leaves(raw)) from.set(key, `${key} in ${options.file}`);
  }
  for (const [name, { key, type }] of Object.entries(environment)) {
    const value = (options.env ?? process.env)[name];
    if (value === undefined || value === '') continue;
    setPath(
      raw,
      key,
      type === 'boolean' ? parseBoolean(name, value) : type === 'list' ? parseList(value) : type === 'number' ? parseNumber(name, value) : value,
    );
    for (const k of [...from.keys()]) if (k === key.join('.') || k.startsWith(`${key.join('.')}.`)) from.delete(k);
    from.set(key.join('.'), name);
  }
  for (const [key, value] of Object.entries(options.overrides ?? {})) {
    if (value === undefined) continue;
    raw[key] = value;
    for (const k of [...from.keys()]) if (k === key || k.startsWith(`${key}.`)) from.delete(k);
    for (const leaf of leaves(value, [key])) from.set(leaf, flagName(leaf.replaceAll('.', '-')));
  }
  const config = validate(raw, options.file);
  origins.set(config, from);
  return config;
}

export function validate(raw: unknown, source = 'configuration'): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(`invalid ${source}:\n${z.prettifyError(result.error)}`);
  return result.data;
}

function parseNumber(name: string, value: string): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !Number.isFinite(n)) throw new ConfigError(`${name} must be a number, not ${JSON.stringify(value)}`);
  return n;
}

function setPath(target: Raw, key: string[], value: unknown): void {
  let node = target;
  for (const part of key.slice(0, -1)) {
    if (typeof node[part] !== 'object' || node[part] === null) node[part] = {};
    node = node[part] as Raw;
  }
  node[key[key.length - 1] as string] = value;
}

function parseList(value: string): string[] {
  return value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);
}

function parseBoolean(name: string, value: string): boolean {
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw new ConfigError(`${name} must be true or false, not ${JSON.stringify(value)}`);
}
