/**
 * SBOM reading, timed: the large documents of the SBOM tests (test/trust/sbom-large.ts), each
 * parsed from bytes five times; prints the fastest and the median CPU time (this process's user +
 * system), which a busy machine disturbs less than wall-clock time. `npm run bench:sbom`.
 */
import { parseSbom } from '../src/trust/sbom/index.ts';
import { largeCycloneDx, largeSpdx2, largeSpdx3, manyLicensesCycloneDx, manyLicensesSpdx3 } from '../test/trust/sbom-large.ts';

const cases: [string, object][] = [
  ['CycloneDX, 100 000 components (half nested)', largeCycloneDx(100_000, true)],
  ['SPDX 2.3, 100 000 packages', largeSpdx2(100_000)],
  ['SPDX 3, 100 000 packages + relationships', largeSpdx3(100_000)],
  ['CycloneDX, 200 000 licenses on one component', manyLicensesCycloneDx(200_000)],
  ['SPDX 3, 200 000 licenses on one package', manyLicensesSpdx3(200_000)],
];

console.log('document'.padEnd(48), 'MiB'.padStart(6), 'fastest ms'.padStart(11), 'median ms'.padStart(10));
for (const [name, doc] of cases) {
  const bytes = new TextEncoder().encode(JSON.stringify(doc));
  const runs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const started = process.cpuUsage();
    parseSbom(bytes);
    const used = process.cpuUsage(started);
    runs.push((used.user + used.system) / 1000);
  }
  runs.sort((a, b) => a - b);
  console.log(name.padEnd(48), (bytes.length / 2 ** 20).toFixed(1).padStart(6), runs[0]!.toFixed(0).padStart(11), runs[2]!.toFixed(0).padStart(10));
}
