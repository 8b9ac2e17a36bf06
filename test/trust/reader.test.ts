/**
 * The document reader: large SBOMs and statements parsed in a child process, within limits, while
 * this event loop keeps turning. Run from src, as the tests load code: the child is child.ts.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { parseStatement, StatementError } from '../../src/trust/intoto.ts';
import { DocumentReader } from '../../src/trust/reader/index.ts';
import { parseSbom, SbomError } from '../../src/trust/sbom/index.ts';
import { projectRoot } from '../helpers/server.ts';

const encode = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const IN_TOTO = 'application/vnd.in-toto+json';

/** A CycloneDX document of `n` components, ~200 bytes each: 10 000 are 2 MiB, past what is read inline. */
const bom = (n: number) => ({
  bomFormat: 'CycloneDX',
  specVersion: '1.6',
  metadata: { component: { name: 'big' } },
  components: Array.from({ length: n }, (_, i) => ({
    type: 'library',
    name: `package-${i}`,
    version: `1.${i}.0`,
    purl: `pkg:npm/package-${i}@1.${i}.0`,
    licenses: [{ license: { id: 'MIT' } }],
    description: 'x'.repeat(80),
  })),
});

/** The processes this one started that are still running. */
const children = (): string[] =>
  readdirSync('/proc/self/task').flatMap((t) => readFileSync(`/proc/self/task/${t}/children`, 'utf8').split(' ').filter(Boolean));

/** The rejection of `run`, which must reject. */
async function rejection(run: Promise<unknown>): Promise<Error> {
  try {
    await run;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

/** How many turns this event loop made while `run` was under way: none when the work is done on it. */
async function turnsDuring<T>(run: () => Promise<T>): Promise<{ value: T; turns: number }> {
  let turns = 0;
  let done = false;
  const spin = () => {
    if (done) return;
    turns++;
    setImmediate(spin);
  };
  setImmediate(spin);
  try {
    return { value: await run(), turns };
  } finally {
    done = true;
  }
}

const readers: DocumentReader[] = [];
const reader = (limits: ConstructorParameters<typeof DocumentReader>[0] = {}) => {
  const r = new DocumentReader(limits);
  readers.push(r);
  return r;
};
afterEach(async () => {
  for (const r of readers.splice(0)) await r.close();
});

describe('SBOMs', () => {
  it('a large SBOM is read in the child, the same as here, while this event loop turns', async () => {
    const bytes = encode(bom(10_000));
    expect(bytes.byteLength).toBeGreaterThan(1024 * 1024);
    const here = parseSbom(bytes, 'application/vnd.cyclonedx+json');
    const { value, turns } = await turnsDuring(() => reader().sbom(bytes, 'application/vnd.cyclonedx+json'));
    expect(value).toEqual(here);
    expect(value.components).toHaveLength(10_000);
    // parsed here, the document would have held the loop for the whole parse: no turn at all
    expect(turns).toBeGreaterThan(100);
    // a small one is read here: it costs less than a message to the child
    const small = await turnsDuring(() => reader().sbom(encode(bom(10)), 'application/vnd.cyclonedx+json'));
    expect(small.value.components).toHaveLength(10);
  });

  it('16 MiB nested too deeply is refused in the child for its nesting', async () => {
    const nested = encode(`${'['.repeat(8 * 1024 * 1024)}${']'.repeat(8 * 1024 * 1024)}`);
    const err = await rejection(reader().sbom(nested, 'application/vnd.cyclonedx+json'));
    expect(err).toBeInstanceOf(SbomError);
    expect(err.message).toBe('the document nests too deeply (more than 128 levels)');
  });

  it('a document that exhausts the child heap is unreadable, this process lives on, and the next one gets a fresh child', async () => {
    // 3 million empty arrays (within the values allowed) are over 100 MiB once parsed. In a worker
    // thread, reaching the heap limit inside JSON.parse aborts the whole process; in a child, only the child.
    const r = reader({ heapMb: 64 });
    const wide = encode(`{"bomFormat":"CycloneDX","specVersion":"1.6","x":[${'[],'.repeat(3e6)}[]]}`);
    const err = await rejection(r.sbom(wide));
    expect(err).toBeInstanceOf(SbomError);
    expect(err.message).toBe('reading it needs more than the 64 MiB of memory Custody gives one document');
    expect((await r.sbom(encode(bom(10_000)))).components).toHaveLength(10_000);
  });

  it('a document that takes longer than the time limit is unreadable', async () => {
    const err = await rejection(reader({ timeoutMs: 1 }).sbom(encode(bom(10_000))));
    expect(err).toBeInstanceOf(SbomError);
    expect(err.message).toBe('reading it took longer than 0.001 s, the most Custody spends on one document');
  });
});

describe('in-toto statements', () => {
  const statement = (predicate: unknown) => ({
    payloadType: IN_TOTO,
    payload: encode({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: 'x', digest: { sha256: 'a'.repeat(64) } }],
      predicateType: 'https://cyclonedx.org/bom',
      predicate,
    }),
  });

  it('a large statement is read in the child: what parseStatement reads, without the predicate', async () => {
    const signed = statement(bom(10_000));
    const { predicate, ...here } = parseStatement(signed);
    expect(predicate).toBeDefined();
    const there = await reader().statement(signed);
    expect(there).toEqual(here);
    expect(there.sbom?.components).toHaveLength(10_000);
  });

  it('a large statement nesting too deeply is a StatementError', async () => {
    const signed = { payloadType: IN_TOTO, payload: encode(`{"predicate":${'['.repeat(1024 * 1024)}${']'.repeat(1024 * 1024)}}`) };
    const err = await rejection(reader().statement(signed));
    expect(err).toBeInstanceOf(StatementError);
    expect(err.message).toBe('the payload nests too deeply (more than 128 levels)');
  });
});

describe('the child process', () => {
  it('closing fails what is queued or running with a plain Error (no verdict), and ends the child', async () => {
    const r = reader();
    const before = children().length;
    const failures = [r.sbom(encode(bom(10_000))), r.sbom(encode(bom(10_001)))].map(rejection);
    while (children().length === before) await new Promise((resolve) => setImmediate(resolve));
    expect(children().length).toBe(before + 1);
    await r.close();
    for (const err of await Promise.all(failures)) {
      expect(err).not.toBeInstanceOf(SbomError);
      expect(err.message).toBe('the document reader was closed');
    }
    expect(children().length).toBe(before);
    expect((await rejection(r.sbom(encode(bom(10_000))))).message).toBe('the document reader was closed');
  });

  it('an idle child holds up neither the process nor its own life: a script that reads a large SBOM ends, and so does its child', async () => {
    const script = `
      import { readdirSync, readFileSync } from 'node:fs';
      import { DocumentReader } from ${JSON.stringify(path.join(projectRoot, 'src/trust/reader/index.ts'))};
      const components = Array.from({ length: 10000 }, (_, i) => ({ name: 'p' + i, description: 'x'.repeat(150) }));
      const doc = await new DocumentReader().sbom(new TextEncoder().encode(JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.6', components })));
      const kids = readdirSync('/proc/self/task').flatMap((t) => readFileSync('/proc/self/task/' + t + '/children', 'utf8').split(' ').filter(Boolean));
      console.log(JSON.stringify({ components: doc.components.length, kids }));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { cwd: projectRoot });
    const out = JSON.parse(stdout) as { components: number; kids: string[] };
    expect(out.components).toBe(10_000);
    expect(out.kids).toHaveLength(1);
    // orphaned when the script ended, the child sees its IPC channel close and exits too
    while (existsSync(`/proc/${out.kids[0]}`) && !readFileSync(`/proc/${out.kids[0]}/stat`, 'utf8').includes(') Z '))
      await new Promise((resolve) => setTimeout(resolve, 50));
  });
});
