/**
 * Samples a process's resident memory from /proc while a workload runs: the whole RSS, and the
 * part that is the process's own (RssAnon), without the pages of the node binary and libraries
 * it maps from files, which are shared and which every Node process carries (~45 MiB here).
 */
import { readFileSync } from 'node:fs';

export interface RssPeak {
  /** MiB */
  rss: number;
  /** MiB of anonymous memory */
  anon: number;
}

export function sampleRss(pid: number | undefined, everyMs = 50): { stop(): RssPeak | undefined } {
  if (pid === undefined) return { stop: () => undefined };
  const peak: RssPeak = { rss: 0, anon: 0 };
  const read = () => {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
      peak.rss = Math.max(peak.rss, kib('VmRSS') / 1024);
      peak.anon = Math.max(peak.anon, kib('RssAnon') / 1024);
    } catch {
      // the process may be gone; keep the peak seen so far
    }
  };
  read();
  const timer = setInterval(read, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      read();
      return peak;
    },
  };
}
