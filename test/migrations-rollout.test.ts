/**
 * Migrations run at start while older replicas still serve (docs/deploy.md, Upgrading while
 * replicas run): each one only adds, and each is listed in that section's table with its verdict.
 * A destructive migration, or a new one missing from the table, fails here until it is reviewed.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { migrations } from '../src/meta/kysely/migrations.ts';
import { projectRoot } from './helpers/server.ts';

const source = readFileSync(path.join(projectRoot, 'src/meta/kysely/migrations.ts'), 'utf8');
const deployDoc = readFileSync(path.join(projectRoot, 'docs/deploy.md'), 'utf8');

describe('migrations and rolling upgrades', () => {
  it('only add: no drop, rename, retype or delete while older replicas serve', () => {
    const destructive = [
      /\.drop(Table|Column|Index|Constraint|View)\(/,
      /\.rename(Column|To)?\(/,
      /\.alterColumn\(/,
      /\.modifyColumn\(/,
      /\b(drop|truncate)\s+(table|column|index)\b/i,
      /\bdelete\s+from\b/i,
      /\balter\s+table\b/i,
    ];
    const found = destructive.filter((re) => re.test(source)).map(String);
    expect(found).toEqual([]);
  });

  it('are each in the upgrade table of docs/deploy.md', async () => {
    const names = Object.keys(await migrations('postgres').getMigrations());
    expect(names.length).toBeGreaterThan(0);
    const table = deployDoc.slice(deployDoc.indexOf('## Upgrading while replicas run'));
    const rows = [...table.matchAll(/^\| (\d{4})(?:–(\d{4}))?(-[a-z-]+)? \|/gm)].map((m) => ({ from: m[1]!, to: m[2] ?? m[1]!, name: m[3] }));
    const listed = (name: string) => rows.some((r) => (r.name ? `${r.from}${r.name}` === name : name.slice(0, 4) >= r.from && name.slice(0, 4) <= r.to));
    expect(names.filter((n) => !listed(n))).toEqual([]);
  });
});
