/** Configuration: defaults, every example in docs/examples, environment overrides and errors. */
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/load.ts';
import { databaseUrl, parseListen, storageUrl } from '../src/config/schema.ts';
import { loadFileTrust } from '../src/trust/config.ts';
import { projectRoot, tempDir } from './helpers/server.ts';

describe('configuration', () => {
  it('needs no file: embedded defaults', async () => {
    const config = await loadConfig({ env: {} });
    expect(config.listen).toBe('0.0.0.0:5000');
    expect(databaseUrl(config)).toBe(path.join('custody-data', 'custody.db'));
    expect(storageUrl(config)).toBe(path.join('custody-data', 'blobs'));
    expect(parseListen('[::1]:5001')).toEqual({ host: '::1', port: 5001 });
  });

  it('accepts every example in docs/examples', async () => {
    const dir = path.join(projectRoot, 'docs/examples');
    const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThan(1);
    for (const file of files) {
      const config = await loadConfig({ file: path.join(dir, file), env: {} });
      // what `custody config check` and the server read at start besides the file itself
      await expect(loadFileTrust(config.trust), file).resolves.toBeDefined();
    }
  });

  it('lets the environment override the file, and flags override both', async () => {
    const file = path.join(await tempDir(), 'c.yaml');
    await writeFile(file, 'listen: 127.0.0.1:7000\nstorage:\n  fsync: true\n');
    const env = { CUSTODY_LISTEN: '127.0.0.1:7001', CUSTODY_STORAGE_FSYNC: 'false', CUSTODY_DATABASE_URL: 'postgres://x@y/z' };
    const config = await loadConfig({ file, env });
    expect(config.listen).toBe('127.0.0.1:7001');
    expect(config.storage.fsync).toBe(false);
    expect(config.database.url).toBe('postgres://x@y/z');
    expect((await loadConfig({ file, env, overrides: { listen: '127.0.0.1:7002' } })).listen).toBe('127.0.0.1:7002');
  });

  it('explains what is wrong', async () => {
    const file = path.join(await tempDir(), 'bad.yaml');
    await writeFile(file, 'listen: nowhere\nunknownKey: 1\n');
    await expect(loadConfig({ file, env: {} })).rejects.toThrow(ConfigError);
    await expect(loadConfig({ file, env: {} })).rejects.toThrow(/listen must be HOST:PORT/);
    await writeFile(file, 'listen: [unclosed\n');
    await expect(loadConfig({ file, env: {} })).rejects.toThrow(/not valid YAML/);
    await expect(loadConfig({ file: '/nonexistent.yaml', env: {} })).rejects.toThrow(/cannot read config file/);
    await expect(loadConfig({ env: { CUSTODY_STORAGE_FSYNC: 'maybe' } })).rejects.toThrow(/true or false/);
  });
});
