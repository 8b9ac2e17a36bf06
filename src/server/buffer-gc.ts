/**
 * The buffer pacer: keeps dead blob buffers from piling up while blobs stream. A concern of the
 * server process, not of the registry: `serve()` starts it and hands its counter to the OCI layer
 * (`setStreamedBytesListener` in src/storage/streamed.ts), which the hashing of pushes and the S3
 * store's reads report the bytes they stream to.
 *
 * Every chunk of a request body is an off-heap buffer that node:http allocates (64 KiB per socket
 * read). V8 frees them only after a collection, and streaming allocates almost nothing on the JS
 * heap, so no young-generation collection comes by itself. Worse, V8 counts the external bytes
 * allocated since its last full collection against the old generation's limit, which for a
 * ~20 MiB heap leaves 8-12 MiB of room: a push at several hundred MB/s set off a full
 * mark-compact every ~12 MiB (30+ per 512 MiB pushed, with concurrent marking on the other core).
 * That halved push throughput in about half of all server runs (measured: ~400 against 650-700
 * MiB/s, 3.3 against 1.6 CPU-seconds per GiB) and let ~40 MiB of garbage sit in malloc's arena.
 *
 * So after every 4 MiB streamed a young-generation collection runs (a scavenge, 0.2-0.4 ms),
 * which frees the dead chunks, lets malloc reuse them and takes them off V8's count well before
 * its limit. A timer catches external memory that grows by other paths, and runs a full
 * collection, at most every 5 s, when the heap holds 16 MiB more than after the last one, or more
 * than 24 MiB it does not use (after bursts of small requests). The first is the price of the
 * scavenges: at several a second, everything a request in flight holds outlives two of them and
 * moves to the old generation, where it stays, dead, until a full collection. V8 usually runs one
 * itself soon enough (in the five-minute soak of docs/benchmarks.md, every 2-3 s), but nothing
 * bounds when; this does, for the price of one full collection (~40 ms) per 5 s at most. An idle
 * server never collects.
 *
 * It needs V8's gc(), which exists only when the process started with `--expose-gc`: bin/custody.js
 * passes it in its #! line (Node documents turning V8 flags on after start as unsupported).
 * Started without it, the pacer says so once and does nothing.
 */
import { getHeapStatistics } from 'node:v8';

const minorEveryStreamedBytes = 4 * 1024 * 1024;
const everyMs = 25;
const externalGrowthBytes = 8 * 1024 * 1024;
const slackBytes = 24 * 1024 * 1024;
const garbageBytes = 16 * 1024 * 1024;
const majorEveryMs = 5000;

type Gc = (options: { type: 'minor' | 'major' }) => void;

export interface BufferPacer {
  /** Counts bytes of off-heap buffers that a stream has just passed on and dropped. */
  streamed: (bytes: number) => void;
  /**
   * The collections it has run so far: the work it did, which the tests check (how much memory
   * that freed, and when, is up to V8's sweeper threads and the machine's load).
   */
  collections: () => { minor: number; major: number };
  stop: () => void;
}

/**
 * Starts pacing, or, when this process has no gc() (started without --expose-gc), tells
 * `onUnavailable` why and returns undefined.
 */
export function paceBufferGc(onUnavailable: (reason: string) => void): BufferPacer | undefined {
  const gc = (globalThis as { gc?: unknown }).gc;
  if (typeof gc !== 'function') {
    onUnavailable('node was started without --expose-gc (bin/custody.js passes it), so streamed buffers are freed at V8’s own pace');
    return undefined;
  }
  const collect = gc as Gc;
  let streamed = 0;
  const runs = { minor: 0, major: 0 };
  // External memory there was after the last young collection (or less, if it shrank since).
  let floor = getHeapStatistics().external_memory;
  const collectYoung = () => {
    streamed = 0;
    runs.minor++;
    collect({ type: 'minor' });
    floor = getHeapStatistics().external_memory;
  };
  let lastMajor = 0;
  // The heap in use after the last full collection (or less, if it shrank since).
  let usedFloor = getHeapStatistics().used_heap_size;
  const timer = setInterval(() => {
    const heap = getHeapStatistics();
    floor = Math.min(floor, heap.external_memory);
    usedFloor = Math.min(usedFloor, heap.used_heap_size);
    const garbage = heap.used_heap_size - usedFloor > garbageBytes;
    const slack = heap.total_heap_size - heap.used_heap_size > slackBytes;
    if (heap.external_memory - floor > externalGrowthBytes) collectYoung();
    else if ((garbage || slack) && Date.now() - lastMajor > majorEveryMs) {
      lastMajor = Date.now();
      runs.major++;
      collect({ type: 'major' });
      usedFloor = getHeapStatistics().used_heap_size;
    }
  }, everyMs);
  timer.unref();
  return {
    streamed: (bytes) => {
      streamed += bytes;
      if (streamed >= minorEveryStreamedBytes) collectYoung();
    },
    collections: () => ({ ...runs }),
    stop: () => clearInterval(timer),
  };
}
