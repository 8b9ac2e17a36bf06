/**
 * A hostile SBOM does not stall the server (issue 5a): 16 MiB of `[[[…]]]` pushed as an SBOM
 * referrer used to hold the event loop for seconds while JSON.parse worked through it. Now it is
 * refused for its nesting, and large SBOMs are parsed in the trust reader's child process while
 * /healthz keeps answering. Both ways the code runs: in this process from src (the child is
 * child.ts, by type stripping) and as `custody serve` from dist (child.js), as `npm start` runs it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { descriptorOf, imageManifest, putManifest, request, types } from './helpers/http.ts';
import { startInProcess, startProcess, type RunningServer } from './helpers/server.ts';
import { pushReferrer, settledArtifact, type ArtifactView } from './helpers/signing.ts';

const MiB = 1024 * 1024;
const cyclonedx = 'application/vnd.cyclonedx+json';

/** A valid CycloneDX SBOM of `n` components, ~200 bytes each: long enough to read that it takes the child a while. */
const validSbom = (n: number) =>
  Buffer.from(
    JSON.stringify({
      bomFormat: 'CycloneDX',
      specVersion: '1.6',
      components: Array.from({ length: n }, (_, i) => ({
        type: 'library',
        name: `package-${i}`,
        version: `1.${i}.0`,
        purl: `pkg:npm/package-${i}@1.${i}.0`,
        licenses: [{ license: { id: 'MIT' } }],
        description: 'x'.repeat(80),
      })),
    }),
  );

/**
 * CPU time, in clock ticks (10 ms), that the processes `pid` started have spent: the work of the
 * trust reader's child. Sampled between /healthz answers, it tells whether the server answered
 * while the documents were being parsed (many samples along the work) or only around it.
 */
function childCpuTicks(pid: number): number {
  let ticks = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean)) {
      try {
        const stat = readFileSync(`/proc/${child}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ticks += Number(fields[11]) + Number(fields[12]);
      } catch {
        // it ended between the two reads
      }
    }
  }
  return ticks;
}

describe.each([
  ['in this process, from src', async () => ({ server: await startInProcess(), pid: process.pid })],
  [
    'as custody serve, from dist',
    async () => {
      const server = await startProcess();
      return { server: server, pid: server.child.pid ?? 0 };
    },
  ],
] as const)('a 16 MiB SBOM nested too deeply, %s', (label, start) => {
  let server: RunningServer;
  let pid: number;
  beforeAll(async () => {
    ({ server, pid } = await start());
  });
  afterAll(async () => server?.stop());

  it('is refused for its nesting, beside a 12 MiB SBOM that is read, while /healthz keeps answering', async () => {
    const repo = 'hostile/app';
    const { body } = await imageManifest(server.url, repo, ['layer']);
    expect((await putManifest(server.url, repo, '1.0', body)).status).toBe(201);
    const subject = descriptorOf(body, types.manifest);
    const nested = Buffer.from(`${'['.repeat(8 * MiB)}${']'.repeat(8 * MiB)}`);
    const valid = validSbom(60_000);
    expect(valid.length).toBeGreaterThan(11 * MiB);

    const hostile = await pushReferrer(server.url, repo, subject, { mediaType: cyclonedx, bytes: nested }, cyclonedx);
    const real = await pushReferrer(server.url, repo, subject, { mediaType: cyclonedx, bytes: valid }, cyclonedx);

    // /healthz back to back until both verdicts are in; the artifact API is asked on the side
    let done = false;
    const settled = settledArtifact(server.url, repo, subject.digest, 60_000).finally(() => (done = true));
    const statuses: number[] = [];
    const workSeen = new Set<number>();
    let maxGapMs = 0;
    let last = performance.now();
    while (!done) {
      statuses.push((await request(server.url, '/healthz', { auth: false })).status);
      workSeen.add(childCpuTicks(pid));
      const now = performance.now();
      maxGapMs = Math.max(maxGapMs, now - last);
      last = now;
    }
    const view: ArtifactView = await settled;
    // Reported, not asserted (no test here asserts a time): what a client saw of the event loop.
    console.log(
      `${label}: ${statuses.length} /healthz answers while the SBOMs were judged, at ${workSeen.size} points of the reader's work; the longest wait between two answers was ${maxGapMs.toFixed(0)} ms`,
    );

    const byDigest = new Map(view.referrers.map((r) => [r.digest, r]));
    expect(byDigest.get(hostile)).toMatchObject({
      kind: 'sbom',
      status: 'done',
      verified: null,
      reason: 'the SBOM cannot be read: the document nests too deeply (more than 128 levels)',
    });
    expect(byDigest.get(real)).toMatchObject({ kind: 'sbom', status: 'done', reason: 'cyclonedx 1.6 SBOM with 60000 components' });
    expect(statuses.every((s) => s === 200)).toBe(true);
    // Parsing the 12 MiB SBOM is ~100 ticks of work. Had it held the event loop, /healthz would
    // have answered before and after it, not along it: one or two points of it seen, not dozens.
    expect(workSeen.size).toBeGreaterThan(20);

    // and the server still serves what it did before
    const components = await request(server.url, `/api/v1/repositories/${repo}/artifacts/${subject.digest}/components`);
    expect(components.json<{ sboms: { components: unknown[] }[] }>().sboms.map((s) => s.components.length)).toEqual([60_000]);
  });
});
