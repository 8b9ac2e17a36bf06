/** The published input schema: the file in docs/ is the module's, and the inputs the suites use are valid v1 inputs. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { inputSchema } from '../../src/policy/input-schema.ts';
import { projectRoot } from '../helpers/server.ts';
import { engineCases, sampleInput } from '../suites/policy-engine.ts';

const validate = new Ajv2020({ strict: true, allErrors: true }).compile(inputSchema);

describe('the policy input schema', () => {
  it('is published as docs/policy-input.schema.json, the same as the one the registry checks policies against', async () => {
    const published: unknown = JSON.parse(await readFile(path.join(projectRoot, 'docs/policy-input.schema.json'), 'utf8'));
    expect(published).toEqual(JSON.parse(JSON.stringify(inputSchema)));
  });

  it('accepts every input of the engine suite', () => {
    for (const [name, c] of Object.entries(engineCases))
      for (const { input } of c.inputs) expect(validate(input), `${name}: ${JSON.stringify(validate.errors)}`).toBe(true);
  });

  it('refuses inputs with a field missing, an unknown field, or a wrong type', () => {
    const missing = sampleInput() as unknown as Record<string, Record<string, unknown>>;
    delete missing.artifact?.labels;
    expect(validate(missing)).toBe(false);
    expect(validate({ ...sampleInput(), extra: 1 })).toBe(false);
    expect(validate(sampleInput({ ns: { storedBytes: 'lots' as unknown as number } }))).toBe(false);
  });
});
