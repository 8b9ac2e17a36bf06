/** The reason codes in src/trust/verdict.ts and the table in docs/trust.md must agree. */
import { glob, readFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import { reasonCodes } from '../../src/trust/verdict.ts';
import { projectRoot } from '../helpers/server.ts';

it('documents every reason code, in the order of the list, and nothing else', async () => {
  const doc = await readFile(`${projectRoot}/docs/trust.md`, 'utf8');
  const start = doc.indexOf('### Reason codes');
  expect(start).toBeGreaterThan(0);
  const section = doc.slice(start, doc.indexOf('\n## ', start));
  const rows = [...section.matchAll(/^\| `([a-z_]+)` \| (.+?) \| (.+) \|$/gm)];
  expect(rows.map((m) => m[1])).toEqual([...reasonCodes]);
  for (const [, code, meaning, examples] of rows) {
    expect(meaning?.trim().length, code).toBeGreaterThan(10);
    expect(examples, code).toMatch(/`[^`]+`/);
  }
});

it('gives every code but pending to some verdict, and pending in the artifact API', async () => {
  const sources: string[] = [];
  for await (const file of glob('src/trust/**/*.ts', { cwd: projectRoot }))
    if (!file.endsWith('verdict.ts')) sources.push(await readFile(`${projectRoot}/${file}`, 'utf8'));
  const trust = sources.join('\n');
  const api = await readFile(`${projectRoot}/src/api/artifacts.ts`, 'utf8');
  for (const code of reasonCodes) expect(code === 'pending' ? api : trust, code).toContain(`'${code}'`);
});
