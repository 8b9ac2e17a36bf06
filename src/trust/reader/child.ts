/**
 * The document reader's child process (see index.ts). Jobs come as IPC messages, the bytes of each
 * over stdin: a pipe takes them from the server's buffer as they are, where an IPC message would
 * be serialized, a copy of up to 64 MiB made on the server's event loop. It parses one document at
 * a time and sends back only what the trust worker keeps, never the parsed JSON. It runs as .ts
 * from src (Node's type stripping: the tests) and as .js from dist (`npm start`), so it uses
 * nothing that needs a build; it ends when the server does.
 */
import { parseStatement } from '../intoto.ts';
import { parseSbom } from '../sbom/index.ts';

/** A document to read: `length` bytes, the next ones on stdin. */
export type Job = { job: 'sbom'; length: number; mediaType?: string } | { job: 'statement'; length: number; payloadType: string };

export type Reply = { ok: true; value: unknown } | { ok: false; name: string; message: string };

function run(job: Job, bytes: Uint8Array): unknown {
  if (job.job === 'sbom') return parseSbom(bytes, job.mediaType);
  // the predicate stays here: nothing reads it past parsing, and in an SBOM attestation it is the bulk
  const { predicate: _, ...statement } = parseStatement({ payloadType: job.payloadType, payload: bytes });
  return statement;
}

const jobs: Job[] = [];
let chunks: Buffer[] = [];
let buffered = 0;

/** Runs every job whose bytes have all come (messages and bytes arrive on two pipes, in either order). */
function runReady(): void {
  for (let job = jobs[0]; job && buffered >= job.length; job = jobs[0]) {
    jobs.shift();
    const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    const bytes = all.subarray(0, job.length);
    chunks = buffered > job.length ? [all.subarray(job.length)] : [];
    buffered -= job.length;
    let reply: Reply;
    try {
      reply = { ok: true, value: run(job, bytes) };
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      reply = { ok: false, name: err.name, message: err.message };
    }
    process.send?.(reply);
  }
}

process.on('message', (job: Job) => {
  jobs.push(job);
  runReady();
});
process.stdin.on('data', (chunk: Buffer) => {
  chunks.push(chunk);
  buffered += chunk.length;
  runReady();
});
process.on('disconnect', () => process.exit(0));
