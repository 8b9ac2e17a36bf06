/**
 * A counter per namespace for the busiest N namespaces, and one `other` series for the rest, so
 * that a registry with thousands of namespaces still writes N+1 series.
 *
 * Every namespace's total is kept (up to `tracked` of them; later ones count in `other` only).
 * The first N namespaces seen are shown at once; after that, at each scrape, the N largest totals
 * are shown, each as its namespace's own total, and what the others add meanwhile goes to
 * `other`. With N namespaces or fewer, every figure is exact and `other` stays 0. So every series only grows: a namespace that enters the
 * top N appears with its total (Prometheus counts no increase for a series' first sample), one
 * that leaves it disappears and its later bytes go to `other`, and summing the rates of all the
 * series gives the registry's rate at every moment.
 */
import { formatSamples, type Sample } from './series.ts';

interface Entry {
  total: number;
  shown: boolean;
}

export const otherNamespaces = 'other';

export class TopNamespaces {
  readonly name: string;
  readonly help: string;
  private readonly n: number;
  private readonly tracked: number;
  private readonly entries = new Map<string, Entry>();
  private other = 0;
  private shown = 0;

  constructor(name: string, help: string, n: number, tracked = Math.max(10_000, n * 10)) {
    this.name = name;
    this.help = help;
    this.n = n;
    this.tracked = tracked;
  }

  add(namespace: string, value: number): void {
    let entry = this.entries.get(namespace);
    if (!entry) {
      if (this.entries.size >= this.tracked || namespace === otherNamespaces) {
        this.other += value;
        return;
      }
      entry = { total: 0, shown: this.shown < this.n };
      if (entry.shown) this.shown++;
      this.entries.set(namespace, entry);
    }
    entry.total += value;
    if (!entry.shown) this.other += value;
  }

  /** Chooses the namespaces shown from now on and writes the family. */
  format(): string {
    // Ties keep the namespaces already shown: membership changes only when a total overtakes.
    const ranked = [...this.entries].sort((a, b) => b[1].total - a[1].total || Number(b[1].shown) - Number(a[1].shown));
    const samples: Sample[] = [];
    this.shown = 0;
    ranked.forEach(([namespace, entry], i) => {
      entry.shown = i < this.n;
      if (entry.shown) {
        this.shown++;
        samples.push({ labels: { namespace }, value: entry.total });
      }
    });
    if (this.entries.size > 0 || this.other > 0) samples.push({ labels: { namespace: otherNamespaces }, value: this.other });
    return formatSamples(this.name, this.help, 'counter', samples);
  }
}
