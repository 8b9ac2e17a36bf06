/**
 * Samples a process from /proc while a workload runs: its peak resident memory, the whole RSS and
 * the part that is the process's own (RssAnon, without the pages of the node binary and libraries
 * it maps from files, which are shared and which every Node process carries, ~45 MiB here); and
 * the CPU time it spent, user and kernel, which tells on a machine with few cores whether the
 * server or the client is what limits a figure.
 */
import { readFileSync } from 'node:fs';

export interface ProcessSample {
  /** MiB */
  rss: number;
  /** MiB of anonymous memory */
  anon: number;
  /** CPU seconds spent in user and kernel mode while sampled */
  cpuSeconds: number;
}

/** Linux's USER_HZ, the unit of /proc/<pid>/stat's times; 100 on every architecture Node runs on. */
const ticksPerSecond = 100;

/** utime + stime of a process, in seconds; fields 14 and 15, counted after the ")" ending its name. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/** A process's CPU seconds so far (user and kernel), or undefined once it is gone. */
export function cpuSecondsOf(pid: number): number | undefined {
  try {
    return cpuSeconds(pid);
  } catch {
    return undefined;
  }
}

/** A process's resident memory now, in MiB: all of it and the anonymous part; undefined once it is gone. */
export function memoryOf(pid: number): { rss: number; anon: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
    return { rss: kib('VmRSS') / 1024, anon: kib('RssAnon') / 1024 };
  } catch {
    return undefined;
  }
}

export function sampleProcess(pid: number | undefined, everyMs = 50): { stop(): ProcessSample | undefined } {
  if (pid === undefined) return { stop: () => undefined };
  const peak = { rss: 0, anon: 0 };
  const read = () => {
    // the process may be gone; keep the peak seen so far
    const now = memoryOf(pid);
    peak.rss = Math.max(peak.rss, now?.rss ?? 0);
    peak.anon = Math.max(peak.anon, now?.anon ?? 0);
  };
  const cpuAtStart = cpuSeconds(pid);
  read();
  const timer = setInterval(read, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      read();
      return { ...peak, cpuSeconds: cpuSeconds(pid) - cpuAtStart };
    },
  };
}
