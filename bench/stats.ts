/** Latency percentiles and the plain-text table the benchmark prints. */

export interface Result {
  workload: string;
  /** operations (requests, pushes, pulls) per second */
  opsPerSec: number;
  /** MiB per second of blob bytes, where bytes move */
  mbPerSec?: number;
  p50: number;
  p99: number;
  /** peak server RSS in MiB during the workload, when the server's pid is known */
  peakRssMiB?: number;
  /** the anonymous part of it (without the binary's file-backed pages) */
  peakAnonMiB?: number;
  /** the server's CPU time (user + kernel) over the workload's wall time, in % of one core */
  serverCpuPercent?: number;
  /** the server's CPU time per operation, in µs: on a busy machine steadier than ops/s, which moves with the CPU the server gets */
  serverCpuMicrosPerOp?: number;
  /** the server's CPU time per GiB of blob bytes moved, where bytes move */
  serverCpuPerGiB?: number;
  /** with --storage s3: s3rver's CPU time over the wall time, in % of one core */
  storageCpuPercent?: number;
  /** the benchmark's own CPU time (all its client threads) over the wall time, in % of one core */
  clientCpuPercent?: number;
  /** wall time of the workload */
  seconds: number;
  /** the machine's 1-minute load average when the workload ended: on a shared machine, what a figure was measured beside */
  loadAvg1?: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] as number;
}

export function summarize(workload: string, latenciesMs: number[], seconds: number, bytes?: number): Result {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  return {
    workload,
    seconds,
    opsPerSec: latenciesMs.length / seconds,
    mbPerSec: bytes === undefined ? undefined : bytes / 1048576 / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
  };
}

export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ')).join('\n');
}

export const fmt = (n: number | undefined, digits = 1): string => (n === undefined ? '-' : n.toFixed(digits));
