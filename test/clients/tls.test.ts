/**
 * HTTPS served directly, with skopeo and podman verifying the server's certificate against a CA
 * made here with openssl (no --tls-verify=false), and a renewed certificate picked up without a
 * restart: on SIGHUP, and by the periodic re-read. The server runs as a process (`npm run build`
 * first) with tls.certificate and tls.key in its config file (or CUSTODY_TLS_CERT/_KEY).
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveClient, run } from '../helpers/clients.ts';
import { basic, testAdmin } from '../helpers/http.ts';
import { imageLayout } from '../helpers/layout.ts';
import { tempDir } from '../helpers/server.ts';
import { spawnCustody, type Spawned } from '../helpers/spawn.ts';

const exec = promisify(execFile);
const openssl = async (...args: string[]) => (await exec('openssl', args)).stdout;

async function haveOpenssl(): Promise<boolean> {
  try {
    await openssl('version');
    return true;
  } catch {
    if (process.env.CI) throw new Error('openssl is required in CI (apt-get install openssl)');
    console.warn('SKIPPED TLS tests: openssl is not installed (apt-get install openssl)');
    return false;
  }
}

const available = (await haveOpenssl()) && (await haveClient('skopeo')) && (await haveClient('podman'));

/** A CA, and server certificates for 127.0.0.1 that it signs, each with the serial asked for. */
class TestCa {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }
  get cert() {
    return path.join(this.dir, 'ca.crt');
  }
  async create(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      path.join(this.dir, 'ca.key'),
      '-out',
      this.cert,
      '-days',
      '2',
      '-subj',
      '/CN=Custody test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    );
  }
  /** Writes a new key and certificate (serial in hex) over `cert` and `key`, each replaced whole by a rename. */
  async issue(serial: string, cert: string, key: string): Promise<void> {
    const base = path.join(this.dir, `server-${serial}`);
    await writeFile(`${base}.ext`, 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n');
    await openssl(
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `${base}.key`,
      '-out',
      `${base}.csr`,
      '-subj',
      '/CN=127.0.0.1',
    );
    await openssl(
      'x509',
      '-req',
      '-in',
      `${base}.csr`,
      '-CA',
      this.cert,
      '-CAkey',
      path.join(this.dir, 'ca.key'),
      '-set_serial',
      `0x${serial}`,
      '-days',
      '1',
      '-out',
      `${base}.crt`,
      '-extfile',
      `${base}.ext`,
    );
    // The key first: for a moment the old certificate sits beside the new key, as in a real renewal.
    await writeFile(`${key}.new`, await readFile(`${base}.key`), { mode: 0o600 });
    await rename(`${key}.new`, key);
    await writeFile(`${cert}.new`, await readFile(`${base}.crt`));
    await rename(`${cert}.new`, cert);
  }
}

/** The serial of the certificate the server presents now, verified against the CA. */
async function servedSerial(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.end();
      resolve(serial);
    });
    socket.on('error', reject);
  });
}

function httpsGet(port: number, ca: Buffer, pathname: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(
        {
          host: '127.0.0.1',
          port,
          path: pathname,
          ca,
          headers: { authorization: basic(testAdmin.username, testAdmin.password), accept: 'application/vnd.oci.image.manifest.v1+json' },
        },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      )
      .on('error', reject);
  });
}

interface TlsServer {
  process: Spawned;
  port: number;
  host: string;
}

async function startTls(dataDir: string, config: string): Promise<TlsServer> {
  const p = spawnCustody(['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--config', config], {
    env: { CUSTODY_ADMIN_PASSWORD: testAdmin.password, CUSTODY_STORAGE_FSYNC: 'false' },
  });
  const m = await p.waitFor(/Server listening at https:\/\/127\.0\.0\.1:(\d+)/, 'the server listened');
  await p.waitFor(/custody is serving/);
  const port = Number(m[1]);
  return { process: p, port, host: `127.0.0.1:${port}` };
}

describe.runIf(available)('HTTPS with skopeo and podman', () => {
  let work: string;
  let ca: TestCa;
  let certs: string;
  const running: Spawned[] = [];

  beforeAll(async () => {
    work = await tempDir('custody-tls-');
    ca = new TestCa(path.join(work, 'ca'));
    await ca.create();
    // What containers/image reads from a --cert-dir: the CA as *.crt.
    certs = path.join(work, 'certs.d');
    await mkdir(certs);
    await writeFile(path.join(certs, 'ca.crt'), await readFile(ca.cert));
  });
  afterAll(async () => {
    for (const p of running) if (p.child.exitCode === null) p.child.kill('SIGTERM');
    await Promise.all(running.map((p) => p.exited));
    if (work) await rm(work, { recursive: true, force: true });
  });

  const skopeo = (...args: string[]) => run('skopeo', ['--insecure-policy', ...args], { REGISTRY_AUTH_FILE: path.join(work, 'auth.json') });
  const podman = (...args: string[]) =>
    run(
      'podman',
      [
        '--root',
        path.join(work, 'podman', 'root'),
        '--runroot',
        path.join(work, 'podman', 'run'),
        '--storage-driver',
        'vfs',
        '--cgroup-manager',
        'cgroupfs',
        '--events-backend',
        'file',
        ...args,
      ],
      {
        XDG_RUNTIME_DIR: path.join(work, 'xdg'),
        REGISTRY_AUTH_FILE: path.join(work, 'auth.json'),
      },
    );

  it('skopeo and podman push and pull over verified HTTPS; a client without the CA refuses the server', async () => {
    const cert = path.join(work, 'server.crt');
    const key = path.join(work, 'server.key');
    await ca.issue('1001', cert, key);
    const config = path.join(work, 'custody.yaml');
    await writeFile(config, `tls:\n  certificate: ${cert}\n  key: ${key}\n  reloadSeconds: 3600\n`);
    const server = await startTls(path.join(work, 'data'), config);
    running.push(server.process);
    const caPem = await readFile(ca.cert);
    expect(await servedSerial(server.port, caPem)).toBe('1001');

    await expect(skopeo('inspect', '--creds', `${testAdmin.username}:${testAdmin.password}`, `docker://${server.host}/tls/none:v1`)).rejects.toThrow(
      /x509|certificate/,
    );

    expect(await skopeo('login', '--cert-dir', certs, '-u', testAdmin.username, '-p', testAdmin.password, server.host)).toMatch(/Login Succeeded/);
    const src = path.join(work, 'layout');
    const image = await imageLayout(src, 'v1');
    await skopeo('copy', '--dest-cert-dir', certs, `oci:${src}:v1`, `docker://${server.host}/tls/app:v1`);
    const inspected = JSON.parse(await skopeo('inspect', '--cert-dir', certs, `docker://${server.host}/tls/app:v1`)) as { Digest: string };
    expect(inspected.Digest).toBe(image.digest);

    // The token flow runs over HTTPS too: the realm is the server's https:// URL.
    const challenge = await new Promise<string>((resolve, reject) =>
      https
        .get({ host: '127.0.0.1', port: server.port, path: '/v2/', ca: caPem }, (res) => (res.resume(), resolve(String(res.headers['www-authenticate']))))
        .on('error', reject),
    );
    expect(challenge).toBe(`Bearer realm="https://${server.host}/token",service="custody"`);

    expect(await podman('login', '--cert-dir', certs, '-u', testAdmin.username, '-p', testAdmin.password, server.host)).toMatch(/Login Succeeded/);
    await podman('pull', '--cert-dir', certs, `${server.host}/tls/app:v1`);
    await podman('push', '--cert-dir', certs, `${server.host}/tls/app:v1`, `${server.host}/tls/repushed:v2`);
    expect((await httpsGet(server.port, caPem, '/v2/tls/repushed/tags/list')).body).toBe(JSON.stringify({ name: 'tls/repushed', tags: ['v2'] }));
    await expect(podman('pull', `${server.host}/tls/repushed:v2`)).rejects.toThrow(/x509|certificate/);

    // Renewed: new key and certificate in place, then SIGHUP; the same process serves the new one.
    const pid = server.process.child.pid;
    await ca.issue('1002', cert, key);
    server.process.child.kill('SIGHUP');
    await server.process.waitFor(/"reason":"SIGHUP"[^\n]*"serial":"1002"[^\n]*loaded a renewed TLS certificate/, 'the renewed certificate was loaded');
    expect(await servedSerial(server.port, caPem)).toBe('1002');
    expect(server.process.child.pid).toBe(pid);
    expect(server.process.child.exitCode).toBeNull();
    const again = JSON.parse(await skopeo('inspect', '--cert-dir', certs, `docker://${server.host}/tls/app:v1`)) as { Digest: string };
    expect(again.Digest).toBe(image.digest);
  });

  it('picks up a renewed certificate by itself, and keeps the old one while the files do not make a pair', async () => {
    const dir = path.join(work, 'periodic');
    await mkdir(dir);
    const cert = path.join(dir, 'server.crt');
    const key = path.join(dir, 'server.key');
    await ca.issue('2001', cert, key);
    const config = path.join(dir, 'custody.yaml');
    await writeFile(config, `tls:\n  reloadSeconds: 1\n`);
    // The files named by the variables this time.
    const p = spawnCustody(['serve', '--listen', '127.0.0.1:0', '--data-dir', path.join(dir, 'data'), '--config', config], {
      env: { CUSTODY_ADMIN_PASSWORD: testAdmin.password, CUSTODY_TLS_CERT: cert, CUSTODY_TLS_KEY: key },
    });
    running.push(p);
    const port = Number((await p.waitFor(/Server listening at https:\/\/127\.0\.0\.1:(\d+)/))[1]);
    const caPem = await readFile(ca.cert);
    expect(await servedSerial(port, caPem)).toBe('2001');

    // Half a renewal: a new key beside the old certificate. The server warns and keeps serving.
    const other = path.join(dir, 'other.key');
    await openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', other);
    await writeFile(`${key}.new`, await readFile(other));
    await rename(`${key}.new`, key);
    await p.waitFor(/are not a usable pair[^\n]*still serving the previous certificate/, 'the warning about the mismatched pair');
    expect(await servedSerial(port, caPem)).toBe('2001');

    await ca.issue('2002', cert, key);
    await p.waitFor(/"reason":"periodic check"[^\n]*"serial":"2002"[^\n]*loaded a renewed TLS certificate/, 'the periodic reload');
    expect(await servedSerial(port, caPem)).toBe('2002');
    expect(p.child.exitCode).toBeNull();
  });
});
