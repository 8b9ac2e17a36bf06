/**
 * `npm run bench -- --soak SECONDS`: the server's memory under a long mixed load. Rounds of 100
 * blobs, 4 KiB, 1 MiB and 64 MiB in the ratio 90:9:1 (73 MiB, fresh bytes each round, in random
 * order), pushed and then pulled at concurrency 4, with a second of manifest GETs by tag (Bearer,
 * as docker pulls) between rounds, each round with a Bearer token of its own from /token, until
 * the time is up (the round under way is finished). It
 * prints the server's RSS as it goes, then its peak and where it ended.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { Pool } from 'undici';
import { basicAuth, pushImage } from './client.ts';
import { memoryOf, sampleProcess } from './process-sample.ts';
import type { Server } from './servers.ts';
import { authFor, Clients, shares } from './workloads.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const round = [...Array<number>(90).fill(4 * KiB), ...Array<number>(9).fill(MiB), 64 * MiB];
const roundMiB = round.reduce((a, b) => a + b, 0) / MiB;
const concurrency = 4;
const manifestSeconds = 1;

export interface SoakSample {
  /** seconds since the soak started */
  t: number;
  rssMiB: number;
  anonMiB: number;
}

export interface SoakResult {
  seconds: number;
  rounds: number;
  /** MiB pushed (and as many pulled) */
  pushedMiB: number;
  samples: SoakSample[];
  peakRssMiB?: number;
  peakAnonMiB?: number;
  endRssMiB?: number;
  endAnonMiB?: number;
  /** the server's CPU time over the soak */
  serverCpuSeconds?: number;
}

/** The round's blob sizes shuffled, dealt out to the client threads in turn. */
function deal(threads: number): number[][] {
  const sizes = [...round];
  for (let i = sizes.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [sizes[i], sizes[j]] = [sizes[j]!, sizes[i]!];
  }
  return Array.from({ length: threads }, (_, t) => sizes.filter((_, i) => i % threads === t));
}

/**
 * Basic credentials with a personal access token instead of the password, as CI clients log in:
 * a token is checked with one hash, a password with scrypt, whose 32 MiB for ~0.1 s would show in
 * the peak each time the server's one-minute cache of checked passwords runs out.
 */
async function tokenCredentials(server: Server): Promise<Server> {
  const password = server.credentials?.authorization;
  if (!password) return server;
  const res = await fetch(`${server.url}/api/v1/tokens`, {
    method: 'POST',
    headers: { authorization: password, 'content-type': 'application/json' },
    body: JSON.stringify({ name: `soak-${Date.now()}`, expiresInDays: 1 }),
  });
  if (res.status !== 201) throw new Error(`POST /api/v1/tokens: ${res.status} ${(await res.text()).slice(0, 300)}`);
  const { token } = (await res.json()) as { token: string };
  const user =
    Buffer.from(password.replace(/^Basic /, ''), 'base64')
      .toString()
      .split(':')[0] ?? '';
  return { ...server, credentials: basicAuth(user, token) };
}

export async function soak(target: Server, seconds: number, log: (line: string) => void): Promise<SoakResult> {
  const server = await tokenCredentials(target);
  const base = server.url;
  const repo = `bench/soak-${Date.now()}`;
  const scopes = [`repository:${repo}:pull,push`];
  const pool = new Pool(base);
  const digest = await pushImage(pool, base, repo, randomBytes, await authFor(server, scopes)).finally(() => pool.close());
  const clients = new Clients(concurrency);
  const loops = shares(concurrency, clients.size);
  const samples: SoakSample[] = [];
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  // Peak and CPU time every 50 ms; the series every second, printed every `printEvery` seconds.
  const whole = sampleProcess(server.pid);
  const printEvery = seconds >= 60 ? 10 : 1;
  let rounds = 0;
  const sample = () => {
    const now = server.pid === undefined ? undefined : memoryOf(server.pid);
    if (!now) return;
    const t = Math.round(elapsed());
    samples.push({ t, rssMiB: now.rss, anonMiB: now.anon });
    if (t % printEvery === 0)
      log(`${String(t).padStart(5)} s  RSS ${now.rss.toFixed(0).padStart(4)} MiB  anon ${now.anon.toFixed(0).padStart(4)} MiB  rounds ${rounds}`);
  };
  const timer = setInterval(sample, 1000);
  try {
    sample();
    while (rounds === 0 || elapsed() < seconds) {
      // A token per round, as docker gets one per pull or push (they expire after 5 minutes).
      const auth = await authFor(server, scopes);
      const sizes = deal(clients.size);
      await clients.run((i) => ({ op: 'blobs', sizes: sizes[i] ?? [] }));
      await clients.run((i) => ({ op: 'push', base, repo, concurrency: loops[i] ?? 1, auth }));
      await clients.run((i) => ({ op: 'pull', base, repo, concurrency: loops[i] ?? 1, auth }));
      await clients.run((i) => ({ op: 'manifest', base, repo, digest, concurrency: loops[i] ?? 1, seconds: manifestSeconds, auth }));
      rounds++;
    }
  } finally {
    clearInterval(timer);
    await clients.close();
  }
  const took = elapsed();
  const seen = whole.stop();
  const end = server.pid === undefined ? undefined : memoryOf(server.pid);
  return {
    seconds: took,
    rounds,
    pushedMiB: rounds * roundMiB,
    samples,
    // The series is read at other moments than the 50 ms sampler: the peak is the higher of both.
    peakRssMiB: seen && Math.max(seen.rss, ...samples.map((s) => s.rssMiB)),
    peakAnonMiB: seen && Math.max(seen.anon, ...samples.map((s) => s.anonMiB)),
    endRssMiB: end?.rss,
    endAnonMiB: end?.anon,
    serverCpuSeconds: seen?.cpuSeconds,
  };
}
