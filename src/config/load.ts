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

/** Environment variables and the config keys they set. */
export const environment: Record<string, { key: string[]; type: 'string' | 'boolean' }> = {
  CUSTODY_LISTEN: { key: ['listen'], type: 'string' },
  CUSTODY_DATA_DIR: { key: ['dataDir'], type: 'string' },
  CUSTODY_DATABASE_URL: { key: ['database', 'url'], type: 'string' },
  CUSTODY_STORAGE_URL: { key: ['storage', 'url'], type: 'string' },
  CUSTODY_STORAGE_FSYNC: { key: ['storage', 'fsync'], type: 'boolean' },
  CUSTODY_LOG_LEVEL: { key: ['log', 'level'], type: 'string' },
  CUSTODY_ADMIN_PASSWORD: { key: ['auth', 'adminPassword'], type: 'string' },
  CUSTODY_AUTH_REALM: { key: ['auth', 'realm'], type: 'string' },
  CUSTODY_TRUST_ENABLED: { key: ['trust', 'enabled'], type: 'boolean' },
  CUSTODY_SIGSTORE_TRUSTED_ROOT: { key: ['trust', 'sigstoreTrustedRoot'], type: 'string' },
};

export async function loadConfig(options: { file?: string; env?: NodeJS.ProcessEnv; overrides?: Raw } = {}): Promise<Config> {
  let raw: Raw = {};
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
  }
  for (const [name, { key, type }] of Object.entries(environment)) {
    const value = (options.env ?? process.env)[name];
    if (value === undefined || value === '') continue;
    setPath(raw, key, type === 'boolean' ? parseBoolean(name, value) : value);
  }
  for (const [key, value] of Object.entries(options.overrides ?? {})) if (value !== undefined) raw[key] = value;
  return validate(raw, options.file);
}

export function validate(raw: unknown, source = 'configuration'): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(`invalid ${source}:\n${z.prettifyError(result.error)}`);
  return result.data;
}

function setPath(target: Raw, key: string[], value: unknown): void {
  let node = target;
  for (const part of key.slice(0, -1)) {
    if (typeof node[part] !== 'object' || node[part] === null) node[part] = {};
    node = node[part] as Raw;
  }
  node[key[key.length - 1] as string] = value;
}

function parseBoolean(name: string, value: string): boolean {
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw new ConfigError(`${name} must be true or false, not ${JSON.stringify(value)}`);
}
