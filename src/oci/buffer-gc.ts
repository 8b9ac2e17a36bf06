/**
 * Keeps dead blob buffers from piling up while blobs stream.
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
 * So the code that streams request bodies reports their bytes here (`noteStreamedBytes`), and
 * after every 4 MiB a young-generation collection runs (a scavenge, 0.2-0.4 ms), which frees the
 * dead chunks, lets malloc reuse them and takes them off V8's count well before its limit. A timer
 * catches external memory that grows by other paths, and, when bursts of small requests have
 * left the heap holding more than 24 MiB it does not use, runs a full collection, at most every
 * 5 s. An idle server never collects.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const minorEveryStreamedBytes = 4 * 1024 * 1024;
const everyMs = 25;
const externalGrowthBytes = 8 * 1024 * 1024;
const slackBytes = 24 * 1024 * 1024;
const majorEveryMs = 5000;

type Gc = (options: { type: 'minor' | 'major' }) => void;

let onStreamed: ((bytes: number) => void) | undefined;

/** Counts bytes of off-heap buffers that a stream has just passed on and dropped. */
export function noteStreamedBytes(bytes: number): void {
  onStreamed?.(bytes);
}

/** The gc() V8 exposes with --expose-gc, which may be turned on after start; undefined if not. */
function exposeGc(): Gc | undefined {
  setFlagsFromString('--expose-gc');
  const gc: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
  return typeof gc === 'function' ? (gc as Gc) : undefined;
}

/** Starts pacing; returns a function that stops it. `onUnavailable` hears why, if it cannot run. */
export function paceBufferGc(onUnavailable: (reason: string) => void): () => void {
  const gc = exposeGc();
  if (!gc) {
    onUnavailable('this runtime does not expose gc(); streamed buffers are freed at V8’s own pace');
    return () => {};
  }
  let streamed = 0;
  // External memory there was after the last young collection (or less, if it shrank since).
  let floor = getHeapStatistics().external_memory;
  const collectYoung = () => {
    streamed = 0;
    gc({ type: 'minor' });
    floor = getHeapStatistics().external_memory;
  };
  onStreamed = (bytes) => {
    streamed += bytes;
    if (streamed >= minorEveryStreamedBytes) collectYoung();
  };
  let lastMajor = 0;
  const timer = setInterval(() => {
    const heap = getHeapStatistics();
    floor = Math.min(floor, heap.external_memory);
    if (heap.external_memory - floor > externalGrowthBytes) collectYoung();
    else if (heap.total_heap_size - heap.used_heap_size > slackBytes && Date.now() - lastMajor > majorEveryMs) {
      lastMajor = Date.now();
      gc({ type: 'major' });
    }
  }, everyMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    onStreamed = undefined;
  };
}
