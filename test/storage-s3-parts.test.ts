/** splitParts and PartBuffers (src/storage/s3/parts.ts): the cut, and the reuse of part buffers. */
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { maxParts, PartBuffers, partsPerSize, release, splitParts, type Part } from '../src/storage/s3/parts.ts';

async function cut(data: Buffer, chunk: number, buffers: PartBuffers): Promise<Part[]> {
  const chunks = Array.from({ length: Math.ceil(data.length / chunk) }, (_, i) => data.subarray(i * chunk, (i + 1) * chunk));
  const parts: Part[] = [];
  for await (const p of splitParts(Readable.from(chunks), buffers)) parts.push({ ...p, bytes: Buffer.from(p.bytes) });
  return parts;
}

describe('splitParts', () => {
  it('cuts parts of exactly the size and a last part with the rest, whatever the chunks', async () => {
    for (const [length, chunk] of [
      [0, 1],
      [10, 3],
      [64, 64],
      [65, 7],
      [200, 64],
      [256, 100],
    ] as const) {
      const data = randomBytes(length);
      const parts = await cut(data, chunk, new PartBuffers(64));
      expect(Buffer.concat(parts.map((p) => p.bytes)).equals(data), `${length}/${chunk}`).toBe(true);
      expect(parts.slice(0, -1).every((p) => p.bytes.length === 64 && !p.last)).toBe(true);
      expect(parts.at(-1)?.last).toBe(true);
      expect(parts.at(-1)?.bytes.length).toBe(length === 0 ? 0 : length - 64 * (parts.length - 1));
    }
  });

  it('doubles the part size after each 1000 parts, so that 10 000 parts reach far beyond 10 000 × the first size', async () => {
    const size = 16;
    const tiers = [1, 2, 4].map((k) => k * size * partsPerSize);
    const data = randomBytes(tiers.reduce((a, b) => a + b, 0) + 3);
    const parts = await cut(data, 1000, new PartBuffers(size));
    expect(Buffer.concat(parts.map((p) => p.bytes)).equals(data)).toBe(true);
    expect(parts.slice(0, partsPerSize).every((p) => p.bytes.length === size)).toBe(true);
    expect(parts.slice(partsPerSize, 2 * partsPerSize).every((p) => p.bytes.length === 2 * size)).toBe(true);
    expect(parts.slice(2 * partsPerSize, 3 * partsPerSize).every((p) => p.bytes.length === 4 * size)).toBe(true);
    expect(parts.at(-1)?.bytes.length).toBe(3);
    expect(parts.length).toBe(3 * partsPerSize + 1);
    // at S3's smallest part (5 MiB), ten tiers hold ~4.9 TiB: nearly S3's largest object (5 TiB)
    const reach = Array.from({ length: maxParts / partsPerSize }, (_, k) => 5 * 2 ** 20 * 2 ** k * partsPerSize).reduce((a, b) => a + b, 0);
    expect(reach).toBeGreaterThan(4.8 * 2 ** 40);
  });

  it('takes no part buffer for a blob that fits in one part', async () => {
    const parts = await cut(randomBytes(64), 10, new PartBuffers(64));
    expect(parts).toHaveLength(1);
    expect(parts[0]?.pooled).toBeUndefined();
  });

  it('reuses the buffers given back while a write runs, and keeps none once the last write ends', async () => {
    const buffers = new PartBuffers(64);
    const end = buffers.begin();
    const seen = new Set<Buffer>();
    for await (const p of splitParts(Readable.from([randomBytes(64 * 5 + 1)]), buffers)) {
      expect(p.pooled).toBeDefined();
      seen.add(p.pooled!);
      buffers.give(p.pooled!);
    }
    // each part was given back before the next was cut: one buffer carried them all
    expect(seen.size).toBe(1);
    const kept = buffers.take();
    expect(seen.has(kept)).toBe(true);
    buffers.give(kept);
    end();
    expect(seen.has(buffers.take())).toBe(false);
  });

  it('frees the buffers it lets go at once (detached, not left to the collector), and only whole ones', () => {
    const buffers = new PartBuffers(64 * 1024);
    const end = buffers.begin();
    const idle = buffers.take();
    const late = buffers.take();
    buffers.give(idle);
    end();
    // the idle one went when the last write ended; the one still out goes when it comes back
    expect(idle.length).toBe(0);
    expect(idle.buffer.byteLength).toBe(0);
    expect(late.length).toBe(64 * 1024);
    buffers.give(late);
    expect(late.length).toBe(0);
    // a buffer that shares its memory (Node's pool of small buffers, a view) is left alone
    const small = Buffer.from('shares a slab');
    release(small);
    expect(small.toString()).toBe('shares a slab');
    const whole = Buffer.allocUnsafeSlow(16).fill(1);
    release(whole.subarray(4));
    expect(whole.length).toBe(16);
    release(whole);
    expect(whole.length).toBe(0);
  });
});
