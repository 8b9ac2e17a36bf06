/**
 * The cost jobs across replicas: two CostServices on one database take each round's lease in turn,
 * so one records a tick per sampling period and a budget crossing is announced once; and the
 * config refuses a price model it cannot apply.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { validate } from '../../src/config/load.ts';
import { CostService } from '../../src/insight/cost/service.ts';
import { openMetaStore } from '../../src/meta/open.ts';
import type { MetaStore } from '../../src/meta/metastore.ts';

const log = { warn() {}, info() {}, error() {}, debug() {} } as never;
let meta: MetaStore | undefined;
afterEach(async () => meta?.close());

describe('the cost jobs', () => {
  it('sample once per period across replicas, and announce a crossing once', async () => {
    meta = await openMetaStore(path.join(await mkdtemp(path.join(tmpdir(), 'custody-cost-')), 'custody.db'));
    await meta.linkBlob('team/app', `sha256:${'1'.repeat(64)}`, 4000);
    let now = Date.UTC(2026, 10, 3);
    const settings = validate({ dataDir: '/tmp/x', insight: { cost: { storagePerGbMonth: 1e9, sampleSeconds: 600, budgetCheckSeconds: 60 } } }).insight.cost;
    const [a, b] = [0, 1].map(() => new CostService({ meta: meta!, log, settings, keepDays: 400, now: () => now }));
    expect((await Promise.all([a!.sample(), b!.sample()])).sort()).toEqual([false, true]);
    now += 300_000; // half a period: the tick is recent, nobody samples
    expect(await Promise.all([a!.sample(), b!.sample()])).toEqual([false, false]);
    now += 300_000;
    expect((await Promise.all([b!.sample(), a!.sample()])).filter(Boolean)).toHaveLength(1);
    const [usage] = await meta.cost.usage({ since: Date.UTC(2026, 10, 1), until: Date.UTC(2026, 11, 1), now });
    expect(usage).toMatchObject({ repository: 'team/app' });
    expect(usage!.storageGbMonths * 1e9).toBeCloseTo((4000 * 600_000) / (30 * 86_400_000), 9);

    // 4000 bytes for ten minutes cost well under 1; a budget of 0.0001 is crossed
    await meta.cost.setBudget({ scope: 'namespace', name: 'team', monthly: 0.0001, soft: null, updatedBy: 'admin', updatedAt: now });
    await Promise.all([a!.check(), b!.check()]);
    now += 60_000;
    await Promise.all([a!.check(), b!.check()]);
    const events = await meta.insight.eventsAfter(undefined, 10, { types: ['budget'] });
    expect(events.map((e) => [e.namespace, e.detail.threshold])).toEqual([['team', 'hard']]);
  });

  it('refuses a network with a name taken or an address that is not one', () => {
    const cost = (networks: unknown) => () => validate({ dataDir: '/tmp/x', insight: { cost: { egress: { networks } } } });
    expect(cost([{ name: 'office', cidrs: ['10.0.0.0/33'], perGb: 0 }])).toThrow(/addresses or CIDRs/);
    expect(cost([{ name: 'office', cidrs: ['loopback'], perGb: 0 }])).toThrow(/addresses or CIDRs/);
    expect(cost([{ name: 'default', cidrs: ['10.0.0.0/8'], perGb: 0 }])).toThrow(/default is taken/);
    expect(cost([{ name: 'office', cidrs: ['10.0.0.0/8'], perGb: -1 }])).toThrow(/0 or more/);
    expect(
      cost([
        { name: 'office', cidrs: ['10.0.0.0/8'], perGb: 0 },
        { name: 'office', cidrs: ['fd00::/8'], perGb: 0 },
      ]),
    ).toThrow(/unique/);
    expect(cost([{ name: 'office', cidrs: ['10.0.0.0/8', 'fd00::/8', '192.0.2.7'], perGb: 0.5 }])().insight.cost.egress.networks).toHaveLength(1);
  });
});
