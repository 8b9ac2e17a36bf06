/** Cuts a stream into parts of one size for a multipart upload, holding at most one part (plus a chunk) at a time. */

export interface Part {
  bytes: Buffer;
  /** no byte follows this part */
  last: boolean;
}

/**
 * Parts of exactly `partSize` bytes, then the rest (1 to partSize bytes; an empty stream gives one
 * empty part). A part is cut only once a byte beyond it has arrived, so `last` is always known.
 */
export async function* splitParts(body: AsyncIterable<Uint8Array>, partSize: number): AsyncGenerator<Part> {
  let chunks: Buffer[] = [];
  let held = 0;
  for await (const chunk of body) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (buf.length === 0) continue;
    chunks.push(buf);
    held += buf.length;
    while (held > partSize) {
      const all = Buffer.concat(chunks, held);
      yield { bytes: all.subarray(0, partSize), last: false };
      chunks = [all.subarray(partSize)];
      held -= partSize;
    }
  }
  yield { bytes: Buffer.concat(chunks, held), last: true };
}
