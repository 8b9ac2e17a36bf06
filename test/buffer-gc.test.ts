/**
 * The buffer pacer (src/oci/buffer-gc.ts): streamed bytes reported to it get their dead buffers
 * freed after 4 MiB, long before V8 would collect them by itself.
 */
import { getHeapStatistics } from 'node:v8';
import { afterEach, expect, it } from 'vitest';
import { noteStreamedBytes, paceBufferGc } from '../src/oci/buffer-gc.ts';

const chunk = 64 * 1024;
const MiB = 1024 * 1024;
let stop = () => {};
afterEach(() => stop());

/** Allocates and drops `count` off-heap chunks, as node:http does per socket read, reporting each. */
function streamChunks(count: number): void {
  for (let i = 0; i < count; i++) {
    const buffer = Buffer.allocUnsafeSlow(chunk);
    buffer.fill(i);
    noteStreamedBytes(buffer.byteLength);
  }
}

async function externalSettlesBelow(limit: number): Promise<number> {
  const deadline = Date.now() + 2000;
  let external = getHeapStatistics().external_memory;
  while (external >= limit && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
    external = getHeapStatistics().external_memory;
  }
  return external;
}

it('frees dead streamed buffers once 4 MiB have been reported', async () => {
  stop = paceBufferGc((reason) => {
    throw new Error(reason);
  });
  const before = getHeapStatistics().external_memory;
  streamChunks(60); // 3.75 MiB: not yet
  expect(getHeapStatistics().external_memory - before).toBeGreaterThan(3 * MiB);
  streamChunks(4); // 4 MiB reached: a young-generation collection frees them
  expect(await externalSettlesBelow(before + MiB)).toBeLessThan(before + MiB);
});
