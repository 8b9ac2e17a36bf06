/**
 * Asking on the terminal, as `docker login` does: a line read with echo (a user name), or a secret
 * read in raw mode so that nothing typed appears. Only when stdin is a terminal; scripts pipe
 * secrets in with --password-stdin instead.
 */
import { createInterface } from 'node:readline/promises';
import { CliError } from './client.ts';

/** Whether the CLI may ask: stdin is a terminal. */
export const interactive = (): boolean => process.stdin.isTTY === true;

/** A line typed on the terminal, shown as it is typed. */
export async function askLine(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  try {
    return (await rl.question(question)).trim();
  } finally {
    rl.close();
  }
}

/**
 * A secret typed on the terminal with echo off: raw mode, so the terminal shows nothing, and the
 * few editing keys handled here. Enter ends it; Ctrl-C or Ctrl-D on an empty line cancels.
 */
export function askSecret(question: string): Promise<string> {
  const input = process.stdin;
  if (!input.isTTY) return Promise.reject(new CliError('cannot ask for a secret: stdin is not a terminal'));
  // echo off before the question shows, so that nothing typed after it is echoed
  input.setRawMode(true);
  process.stderr.write(question);
  return new Promise((resolve, reject) => {
    const chars: string[] = [];
    let escape = false;
    const finish = (error?: Error) => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(chars.join(''));
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (escape) {
          // the rest of an escape sequence (arrow keys and the like): ESC [ params letter-or-~
          if (/[A-Za-z~]/.test(ch)) escape = false;
          continue;
        }
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003') return finish(new CliError('cancelled'));
        if (ch === '\u0004') {
          if (chars.length === 0) return finish(new CliError('cancelled'));
          return finish();
        }
        if (ch === '\u007f' || ch === '\b') chars.pop();
        else if (ch === '\u0015') chars.length = 0;
        else if (ch === '\u001b') escape = true;
        else if (ch >= ' ') chars.push(ch);
      }
    };
    input.setEncoding('utf8');
    input.on('data', onData);
    input.resume();
  });
}

/**
 * A new password typed twice. With `optional`, an empty first answer means none (undefined);
 * otherwise it is refused. Two answers that differ change nothing.
 */
export async function askNewPassword(question: string, options: { optional?: boolean } = {}): Promise<string | undefined> {
  const first = await askSecret(question);
  if (first === '') {
    if (options.optional) return undefined;
    throw new CliError('no password given: nothing changed');
  }
  const second = await askSecret('Retype it: ');
  if (second !== first) throw new CliError('the two passwords differ: nothing changed');
  return first;
}
