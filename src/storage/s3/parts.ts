/**
 * Cuts a stream into parts of one size for a multipart upload. A part's bytes live in a buffer
 * from `PartBuffers`, which the writer gives back once S3 has the part: the same few buffers carry
 * every part of every push. Fresh ones per part were garbage that outlived two scavenges while
 * S3 took them (hundreds of ms), so only a full collection freed them; two concurrent 64 MiB
 * pushes held ~90 MiB of dead parts between collections (bench/run.ts --storage s3). For the same
 * reason a buffer the pool lets go is freed there and then (`release`), not left to the collector:
 * the pool empties each time no write runs, between two pushes too, and each time the next push
 * allocated its buffers afresh while the last ones waited, dead, for a full collection (up to
 * 70 MiB of array buffers during two concurrent 64 MiB pushes).
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

  /** A buffer of `size` bytes (default: the part size); only those of the part size are reused. */
  take(size = this.size): Buffer {
    if (size !== this.size) return Buffer.allocUnsafeSlow(size);
    return this.idle.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  /** Back from a write that is done with it: kept for the next part while writes run, else freed. */
  give(buffer: Buffer): void {
    if (this.writes > 0 && buffer.length === this.size) this.idle.push(buffer);
    else release(buffer);
  }

  /** A write begins; the returned function ends it. The last to end frees the idle buffers, so an idle server holds none. */
  begin(): () => void {
    this.writes++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--this.writes === 0) for (const buffer of this.idle.splice(0)) release(buffer);
    };
  }
}

/**
 * Frees a buffer's memory now, if the buffer is all of its ArrayBuffer (one of `take`'s, or
 * another unpooled one nothing else shares): detaching the ArrayBuffer (`transfer(0)`) drops its
 * backing store at once, where a dropped reference waits for a collection, a full one once the
 * buffer has lived long enough to be promoted. Only for buffers whose every user is done: the
 * buffer reads as empty afterwards.
 */
export function release(buffer: Buffer): void {
  // ES2024's transfer and detached (Node ≥ 21), not in this project's ES2023 lib
  const whole = buffer.buffer as ArrayBufferLike & { detached?: boolean; transfer?: (length: number) => ArrayBuffer };
  if (!(whole instanceof ArrayBuffer) || buffer.byteOffset !== 0 || buffer.byteLength !== whole.byteLength || whole.detached === true) return;
  whole.transfer?.(0);
}

/** S3 takes at most this many parts per object. */
export const maxParts = 10_000;
/** Parts of one size in a row before the size doubles (see splitParts). */
export const partsPerSize = 1000;

/**
 * Parts of `buffers.size` bytes, then the rest (1 to size bytes; an empty stream gives one empty
 * part). A part is cut only once a byte beyond it has arrived, so `last` is always known. Until
 * more than one part's bytes have come, the chunks are kept as they arrive: a blob that fits in
 * one part (most of them) takes no part buffer. S3 takes at most 10 000 parts, which at 5 MiB
 * would end a blob at ~48 GiB: so after each 1000 parts the size doubles (S3 only needs every part
 * but the last to be at least 5 MiB), and 5 MiB parts reach ~4.9 TiB within the limit (S3's
 * largest object is 5 TiB). Memory per write grows with them: 10 MiB parts past ~4.9 GiB, 40 MiB
 * past ~34 GiB.
 */
export async function* splitParts(body: AsyncIterable<Uint8Array>, buffers: PartBuffers): AsyncGenerator<Part> {
  let partSize = buffers.size;
  let cut = 0;
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
        if (++cut % partsPerSize === 0) partSize *= 2;
        part = buffers.take(partSize);
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
