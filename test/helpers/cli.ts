/**
 * Running the built CLI (`npm run build` first) as a child process with its own HOME and
 * XDG_CONFIG_HOME: with stdin a pipe, or on a pseudo-terminal (util-linux `script`, in Debian's
 * essential bsdutils) that answers each prompt once it shows, as a person would.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from './server.ts';

/** A terminal's control sequence (ESC [ … letter), built from its code so that no control character sits in a literal. */
const csi = new RegExp(`${String.fromCharCode(0x1b)}\\[[0-9;]*[A-Za-z]`, 'g');

export const node = path.join(projectRoot, 'node_modules/.bin/node');
export const bin = path.join(projectRoot, 'bin/custody.js');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Throws unless dist/ has the CLI module a test needs (e.g. 'prompt'). */
export function assertBuilt(module: string): void {
  if (!existsSync(path.join(projectRoot, `dist/cli/${module}.js`))) throw new Error('the CLI is not built: run `npm run build` first');
}

function environment(home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, XDG_CONFIG_HOME: path.join(home, 'config') };
  delete env.CUSTODY_PASSWORD;
  delete env.CUSTODY_USERNAME;
  return { ...env, ...extra };
}

/** Runs `custody args…` with `input` on stdin (a pipe, closed after it). */
export function runCli(home: string, args: string[], input?: string, env?: Record<string, string>): Promise<Run> {
  const child = spawn(node, [bin, ...args], { env: environment(home, env), stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(input);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** A prompt to wait for, and what to type at it (Enter is added unless `raw`). */
export interface Answer {
  prompt: string;
  type: string;
  raw?: boolean;
}

/**
 * Runs `custody args…` on a pseudo-terminal. Each answer is typed only once its prompt has
 * appeared after the previous one, so a program that turned echo off too late would show it.
 * `output` is everything the terminal showed (stdout and stderr), with line ends made \n.
 */
export function runOnTerminal(
  home: string,
  args: string[],
  answers: Answer[],
  timeoutMs = 20_000,
): Promise<{ code: number | null; output: string; answered: number }> {
  const command = [node, bin, ...args].map(shellQuote).join(' ');
  // -q: no "Script started" lines; -e: exit with the command's code; the typescript goes nowhere
  const child = spawn('script', ['-qec', command, '/dev/null'], {
    env: { ...environment(home), SHELL: '/bin/sh', TERM: 'xterm' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  let from = 0;
  let answered = 0;
  const onData = (d: Buffer) => {
    output += d.toString();
    for (;;) {
      const next = answers[answered];
      if (!next) return;
      const at = output.indexOf(next.prompt, from);
      if (at === -1) return;
      from = at + next.prompt.length;
      answered += 1;
      child.stdin.write(next.raw ? next.type : `${next.type}\r`);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      child.stdin.destroy();
      // readline positions the cursor with escape sequences: dropped, to leave the text
      resolve({ code, output: output.replace(/\r+\n/g, '\n').replace(csi, ''), answered });
    });
  });
}
