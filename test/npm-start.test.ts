/**
 * `npm start`, as the README starts Custody: SIGTERM sent to the npm process reaches the server,
 * which finishes the request in flight and exits, and npm with it. Before, npm's shell stood
 * between npm and node and did not pass the signal on: npm went, the server stayed.
 */
import http from 'node:http';
import { rm } from 'node:fs/promises';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { basic, testAdmin } from './helpers/http.ts';
import { tempDir } from './helpers/server.ts';
import { processRunning, spawnCustody } from './helpers/spawn.ts';

const leftovers: number[] = [];
const dirs: string[] = [];

afterAll(async () => {
  // Only the server this test started, should it have outlived the test.
  for (const pid of leftovers) if (await processRunning(pid)) process.kill(pid, 'SIGKILL');
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('npm start', () => {
  it('stops on SIGTERM to npm, after the request in flight', async () => {
    const dataDir = await tempDir();
    dirs.push(dataDir);
    const npm = spawnCustody(['--listen', '127.0.0.1:0', '--data-dir', dataDir], { via: 'npm', env: { CUSTODY_ADMIN_PASSWORD: testAdmin.password } });
    const listening = await npm.waitFor(/\{[^\n]*"pid":(\d+)[^\n]*Server listening at http:\/\/127\.0\.0\.1:(\d+)/, 'the server listened');
    const nodePid = Number(listening[1]);
    const port = Number(listening[2]);
    leftovers.push(nodePid);
    // The server is npm's child, not npm itself.
    expect(nodePid).not.toBe(npm.child.pid);
    expect(await processRunning(nodePid)).toBe(true);

    const auth = basic(testAdmin.username, testAdmin.password);
    const started = await new Promise<http.IncomingMessage>((resolve, reject) =>
      http
        .request(
          { host: '127.0.0.1', port, method: 'POST', path: '/v2/team/app/blobs/uploads/', headers: { authorization: auth, 'content-length': 0 } },
          resolve,
        )
        .on('error', reject)
        .end(),
    );
    started.resume();
    expect(started.statusCode).toBe(202);
    const location = started.headers.location ?? '';

    // A PATCH whose body comes in two parts. `Expect: 100-continue` tells when the server has the
    // request: from then on it is in flight, not an idle connection that closing may drop.
    const first = Buffer.alloc(64 * 1024, 'a');
    const second = Buffer.alloc(64 * 1024, 'b');
    const patch = http.request({
      host: '127.0.0.1',
      port,
      method: 'PATCH',
      path: location,
      headers: { authorization: auth, 'content-type': 'application/octet-stream', 'content-length': first.length + second.length, expect: '100-continue' },
    });
    const answered = new Promise<http.IncomingMessage>((resolve, reject) => {
      patch.on('response', resolve);
      patch.on('error', reject);
    });
    // (with the old start script the server is killed at the end, and this request with it)
    answered.catch(() => {});
    await new Promise<void>((resolve) => patch.once('continue', resolve));
    patch.write(first);

    npm.child.kill('SIGTERM');
    // While the request is unfinished the server cannot exit, nor npm, which waits for it.
    const heard = await Promise.race([npm.waitFor(/finishing in-flight requests, then exiting/).then(() => true), npm.exit.then(() => false)]);
    expect(heard, `npm exited and the server (pid ${nodePid}) never heard SIGTERM:\n${npm.output()}`).toBe(true);

    patch.end(second);
    const reply = await answered;
    reply.resume();
    expect(reply.statusCode).toBe(202);
    expect(reply.headers.range).toBe(`0-${first.length + second.length - 1}`);

    // npm exits when its child has, and the server's process is gone.
    const { code } = await npm.exit;
    expect(code, npm.output()).toBe(0);
    await vi.waitFor(async () => expect(await processRunning(nodePid)).toBe(false), { timeout: 10_000, interval: 100 });
  });
});
