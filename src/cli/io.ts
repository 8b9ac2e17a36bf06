/** Printing and reading for the management commands: tables or JSON, stdin, one-line errors. */
import type { Command } from 'commander';
import { CliError } from './client.ts';

export interface JsonOption {
  json?: boolean;
}

/** Adds `--json` to a command. */
export const withJson = (command: Command): Command => command.option('--json', 'print JSON instead of a table');

type Cell = string | number | boolean | null | undefined;

/** Columns padded to their widest cell, headers in capitals. */
export function table(headers: string[], rows: Cell[][]): string {
  const text = [headers.map((h) => h.toUpperCase()), ...rows.map((r) => r.map((c) => (c === null || c === undefined || c === '' ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...text.map((r) => (r[i] ?? '').length)));
  return text.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

/** Prints data as JSON with --json, else as the human text. */
export function emit(options: JsonOption, data: unknown, human: () => string): void {
  console.log(options.json ? JSON.stringify(data, null, 2) : human());
}

/** All of stdin, without the final line break (as `echo pw |` and here-strings add one). */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Wraps a command's action: an error becomes one line on stderr and exit code 1. */
export function action<A extends unknown[]>(run: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await run(...args);
    } catch (err) {
      console.error(`custody: ${err instanceof CliError ? err.message : (err as Error).message}`);
      process.exitCode = 1;
    }
  };
}

/** `pull,push` → ['pull', 'push']; the server checks the names. */
export const scopes = (value: string): string[] =>
  value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export function wholeNumber(value: string): number {
  if (!/^\d+$/.test(value)) throw new CliError(`${value} is not a whole number`);
  return Number(value);
}

export function bool(value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new CliError(`use true or false, not ${value}`);
}

/** Path segments as they go into a URL. */
export const seg = encodeURIComponent;

/** 10737418240 → `10 GiB`; sizes that are no whole binary unit keep one decimal (`1.5 KiB`, `22 B`). */
export function bytesText(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (i < units.length - 1 && bytes >= 1024 ** (i + 1)) i++;
  const value = bytes / 1024 ** i;
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[i]}`;
}
