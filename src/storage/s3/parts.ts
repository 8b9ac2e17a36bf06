/**
 * Cuts a stream into parts of one size for a multipart upload. A part's bytes live in a buffer
 * from `PartBuffers`, which the writer gives back once S3 has the part: the same few buffers carry
 * every part of every push. Fresh ones per part were garbage that outlived two scavenges while
 * S3 took them (hundreds of ms), so only a full collection freed them; two concurrent 64 MiB
 * pushes held ~90 MiB of dead parts between collections (bench/run.ts --storage s3).
 */

export interface Part {
  bytes: Buffer;
  /** no byte follows this part */
  last: boolean;
  /** the buffer under `bytes`, to give back to its PartBuffers once the part is sent */
  pooled?: Buffer;
}

/** Buffers of one part's size, kept for reuse while writes run and let go when none does. */
export class PartBuffers {
  readonly size: number;
  private readonly idle: Buffer[] = [];
  private writes = 0;

  constructor(size: number) {
    this.size = size;
  }

  take(): Buffer {
    return this.idle.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  give(buffer: Buffer): void {
    if (this.writes > 0 && buffer.length === this.size) this.idle.push(buffer);
  }

  /** A write begins; the returned function ends it. The last to end lets the idle buffers go, so an idle server holds none. */
  begin(): () => void {
    this.writes++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--this.writes === 0) this.idle.length = 0;
    };
  }
}

/**
 * Parts of exactly `buffers.size` bytes, then the rest (1 to size bytes; an empty stream gives one
 * empty part). A part is cut only once a byte beyond it has arrived, so `last` is always known.
 * Until more than one part's bytes have come, the chunks are kept as they arrive: a blob that fits
 * in one part (most of them) takes no part buffer.
 */
export async function* splitParts(body: AsyncIterable<Uint8Array>, buffers: PartBuffers): AsyncGenerator<Part> {
  const partSize = buffers.size;
  let chunks: Buffer[] = [];
  let held = 0;
  let part: Buffer | undefined;
  let filled = 0;
  for await (const chunk of body) {
    let buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (buf.length === 0) continue;
    if (part === undefined) {
      if (held + buf.length <= partSize) {
        chunks.push(buf);
        held += buf.length;
        continue;
      }
      part = buffers.take();
      filled = 0;
      for (const c of chunks) filled += c.copy(part, filled);
      chunks = [];
    }
    while (buf.length > 0) {
      if (filled === partSize) {
        yield { bytes: part, last: false, pooled: part };
        part = buffers.take();
        filled = 0;
      }
      const copied = buf.copy(part, filled);
      filled += copied;
      buf = buf.subarray(copied);
    }
  }
  if (part === undefined) yield { bytes: Buffer.concat(chunks, held), last: true };
  else yield { bytes: part.subarray(0, filled), last: true, pooled: part };
}
