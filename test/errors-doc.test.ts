/** docs/errors.md and the error table in src/oci/errors.ts must agree. */
import { readFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import { ociErrorCodes } from '../src/oci/errors.ts';
import { projectRoot } from './helpers/server.ts';

it('documents every error code with its status and message', async () => {
  const doc = await readFile(`${projectRoot}/docs/errors.md`, 'utf8');
  const rows = [...doc.matchAll(/^\| ([A-Z_]+) \| (\d{3}) \| (.+) \|$/gm)].map((m) => [m[1], Number(m[2]), m[3]]);
  const table = Object.entries(ociErrorCodes).map(([code, { status, message }]) => [code, status, message]);
  expect(rows).toEqual(table);
});
