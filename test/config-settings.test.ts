/**
 * The settings that TLS, proxies and start-up messages added to the configuration: tls needs both
 * files, trustedProxies takes addresses and CIDRs (from the file or CUSTODY_TRUSTED_PROXIES), and
 * every setting knows where it came from, so a start-up error can name it.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, originOf, settingSource } from '../src/config/load.ts';
import { isAddressOrRange, redactUrl } from '../src/config/schema.ts';
import { tempDir } from './helpers/server.ts';

describe('TLS and proxy settings', () => {
  it('tls: off by default; the certificate and the key go together', async () => {
    const none = await loadConfig({ env: {} });
    expect(none.tls).toEqual({ reloadSeconds: 60 });
    expect(none.trustedProxies).toEqual([]);
    const both = await loadConfig({ env: { CUSTODY_TLS_CERT: '/etc/custody/tls.crt', CUSTODY_TLS_KEY: '/etc/custody/tls.key' } });
    expect(both.tls).toEqual({ certificate: '/etc/custody/tls.crt', key: '/etc/custody/tls.key', reloadSeconds: 60 });
    await expect(loadConfig({ env: { CUSTODY_TLS_CERT: '/etc/custody/tls.crt' } })).rejects.toThrow(/tls\.certificate and tls\.key go together/);
  });

  it('trustedProxies: addresses, CIDRs and named ranges, from the file or a comma-separated variable', async () => {
    const file = path.join(await tempDir(), 'c.yaml');
    await writeFile(file, 'trustedProxies: [10.0.0.0/8, "fd00::/8", 192.0.2.7, loopback]\n');
    expect((await loadConfig({ file, env: {} })).trustedProxies).toEqual(['10.0.0.0/8', 'fd00::/8', '192.0.2.7', 'loopback']);
    expect((await loadConfig({ file, env: { CUSTODY_TRUSTED_PROXIES: '127.0.0.1, ::1' } })).trustedProxies).toEqual(['127.0.0.1', '::1']);
    await writeFile(file, 'trustedProxies: [proxy.example.com]\n');
    await expect(loadConfig({ file, env: {} })).rejects.toThrow(/trustedProxies takes addresses or CIDRs/);
    for (const bad of ['10.0.0.0/33', '::1/129', '10.0.0.1/8/8', '10.0.0', '']) expect(isAddressOrRange(bad), bad).toBe(false);
  });

  it('knows where each setting came from: flag, variable, file key or default', async () => {
    const file = path.join(await tempDir(), 'c.yaml');
    await writeFile(file, 'listen: 127.0.0.1:7000\ndatabase:\n  url: postgres://u:p@db/x\nstorage:\n  fsync: false\n');
    const config = await loadConfig({
      file,
      env: { CUSTODY_STORAGE_URL: '/srv/blobs', CUSTODY_LISTEN: '127.0.0.1:7001' },
      overrides: { dataDir: '/srv/custody' },
    });
    expect(originOf(config, 'listen')).toBe('CUSTODY_LISTEN');
    expect(originOf(config, 'database.url')).toBe(`database.url in ${file}`);
    expect(originOf(config, 'storage.url')).toBe('CUSTODY_STORAGE_URL');
    expect(originOf(config, 'storage.fsync')).toBe(`storage.fsync in ${file}`);
    expect(originOf(config, 'dataDir')).toBe('--data-dir');
    expect(originOf(config, 'log.level')).toBeUndefined();
    expect(settingSource(config, 'listen', { flag: '--listen' })).toBe('from CUSTODY_LISTEN');
    expect(settingSource(config, 'log.level')).toBe('the default; set CUSTODY_LOG_LEVEL or log.level in the config file');
    const flagged = await loadConfig({ file, env: { CUSTODY_LISTEN: '127.0.0.1:7001' }, overrides: { listen: '127.0.0.1:7002' } });
    expect(settingSource(flagged, 'listen', { flag: '--listen' })).toBe('from --listen');
    const defaults = await loadConfig({ env: {} });
    expect(settingSource(defaults, 'listen', { flag: '--listen' })).toBe('the default; set --listen, CUSTODY_LISTEN or listen in the config file');
  });

  it('shows URLs without their passwords', () => {
    expect(redactUrl('postgres://u:secret@127.0.0.1:1/x')).toBe('postgres://u:***@127.0.0.1:1/x');
    expect(redactUrl('postgres://u@db/x?sslmode=require&password=secret')).toBe('postgres://u@db/x?sslmode=require&password=***');
    expect(redactUrl('/srv/custody/custody.db')).toBe('/srv/custody/custody.db');
  });
});

describe('garbage collection settings', () => {
  it('an hour of grace by default; CUSTODY_GC_GRACE_SECONDS sets it, and must be a whole number of seconds', async () => {
    expect((await loadConfig({ env: {} })).lifecycle.gc).toEqual({
      graceSeconds: 3600,
      intervalSeconds: 3600,
      batchSize: 500,
      heartbeatSeconds: 5,
      busyShare: 0.1,
    });
    const set = await loadConfig({ env: { CUSTODY_GC_GRACE_SECONDS: '90' } });
    expect(set.lifecycle.gc.graceSeconds).toBe(90);
    expect(originOf(set, 'lifecycle.gc.graceSeconds')).toBe('CUSTODY_GC_GRACE_SECONDS');
    await expect(loadConfig({ env: { CUSTODY_GC_GRACE_SECONDS: 'an hour' } })).rejects.toThrow('CUSTODY_GC_GRACE_SECONDS must be a number, not "an hour"');
    await expect(loadConfig({ env: { CUSTODY_GC_GRACE_SECONDS: '-5' } })).rejects.toThrow(/lifecycle\.gc\.graceSeconds/);
  });
});
