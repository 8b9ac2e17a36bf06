/**
 * auth.requestsPerSecond across replicas (issue 16, docs/auth.md "Request rates across replicas"):
 * three `custody serve` processes on one PostgreSQL database, 5 requests a second per identity,
 * and one client that sends as fast as it can, round-robin over the three, for two whole windows
 * (4 s). With the counts shared, it gets what one replica alone would allow (10 a window); with
 * `auth.shareRequestRates: false` it gets each replica's bucket, about three times that, which is
 * what the first test would see if the sharing did not work.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { request } from './helpers/http.ts';
import { dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';
import { startProcess, tempDir, type ProcessServer } from './helpers/server.ts';

const perSecond = 5;
const windowMs = 2000;
const windows = 2;
const havePostgres = await postgresAvailable();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Tally {
  allowed: number;
  refused: number;
  /** Retry-After of the refusals, against the time left in their window */
  retryAfterWrong: string[];
  other: string[];
}

/** Starts three replicas on a fresh database with the rate limit; `share` sets auth.shareRequestRates. */
async function replicas(share: boolean, running: ProcessServer[]): Promise<ProcessServer[]> {
  const configFile = path.join(await tempDir('custody-rates-'), 'custody.yaml');
  // YAML is a superset of JSON
  await writeFile(configFile, JSON.stringify({ auth: { requestsPerSecond: perSecond, shareRequestRates: share } }));
  const env = { CUSTODY_DATABASE_URL: await freshDatabase() };
  const started = await Promise.allSettled([0, 1, 2].map(() => startProcess({ env, args: ['--config', configFile] })));
  for (const s of started) if (s.status === 'fulfilled') running.push(s.value);
  for (const s of started) if (s.status === 'rejected') throw s.reason;
  // every replica has exchanged and heard of the others (an exchange every 250 ms)
  await sleep(1000);
  return running.slice(-3);
}

/** One client, round-robin over the replicas as fast as it can, from a window's start for `windows` windows. */
async function hammer(over: ProcessServer[]): Promise<Tally> {
  const tally: Tally = { allowed: 0, refused: 0, retryAfterWrong: [], other: [] };
  await sleep(windowMs - (Date.now() % windowMs) + 20);
  const end = Date.now() - (Date.now() % windowMs) + windows * windowMs;
  for (let i = 0; Date.now() < end - 20; i++) {
    const sent = Date.now();
    const r = await request(over[i % over.length]!.url, '/v2/');
    if (r.status === 200) tally.allowed++;
    else if (r.status === 429) {
      tally.refused++;
      const left = Math.ceil((windowMs - (sent % windowMs)) / 1000);
      const retryAfter = Number(r.headers['retry-after']);
      // the wait until this window ends (or a second, for a share the others may give up)
      if (!(retryAfter >= 1 && retryAfter <= Math.max(left, 1) + 1)) tally.retryAfterWrong.push(`${r.headers['retry-after']} with ${left} s left`);
    } else tally.other.push(`${r.status} ${r.body.toString().slice(0, 200)}`);
  }
  return tally;
}

describe.runIf(havePostgres)('request rates across three replicas on PostgreSQL', () => {
  const running: ProcessServer[] = [];
  afterAll(async () => {
    for (const r of running) await r.stop();
    await dropDatabases();
  });

  it('allows a client spread over three replicas what one replica would, not three times it', { timeout: 60_000 }, async () => {
    const three = await replicas(true, running);
    const tally = await hammer(three);
    console.log(`shared: ${tally.allowed} allowed, ${tally.refused} refused in ${windows} windows of ${perSecond * 2} requests`);
    expect(tally.other).toEqual([]);
    expect(tally.retryAfterWrong).toEqual([]);
    expect(tally.refused).toBeGreaterThan(100);
    // one replica alone: 10 a window; a little more when a window boundary falls between replicas' clocks
    expect(tally.allowed).toBeGreaterThanOrEqual(windows * perSecond * 2 - 2);
    expect(tally.allowed).toBeLessThanOrEqual(windows * perSecond * 2 + 3);
    for (const r of three) expect(r.output()).not.toMatch(/"level":(5|6)\d/);
  });

  it('allows about three times that when the replicas do not share their counts', { timeout: 60_000 }, async () => {
    const three = await replicas(false, running);
    const tally = await hammer(three);
    console.log(`not shared: ${tally.allowed} allowed, ${tally.refused} refused`);
    expect(tally.other).toEqual([]);
    // each replica's own bucket: a burst of 10, then 5 a second
    expect(tally.allowed).toBeGreaterThanOrEqual(3 * (perSecond * 2 + perSecond * 3));
  });
});
