/**
 * Prometheus metrics without a dependency: counters, gauges and histograms with labels, rendered
 * in the text exposition format at GET /metrics. One registry per app instance, so parallel
 * tests do not share numbers.
 */

type Labels = Record<string, string>;

interface Metric {
  readonly name: string;
  render(): string;
}

/**
 * A series' identity: label names in sorted order with their raw values, joined by separators no
 * label holds. Built once per series and label order (Series below); rendering it for Prometheus
 * (escaping, quoting) waits for a scrape: metrics are observed on every webhook and turn, and read
 * a few times a minute.
 */
function labelKey(labels: Labels): string {
  const keys = Object.keys(labels);
  if (keys.length > 1) keys.sort();
  let key = "";
  for (const k of keys) {
    const value = labels[k]!;
    // The separators themselves are kept out of the value (none of ours holds them).
    key += `${k}\u0002${value.includes("\u0001") || value.includes("\u0002") ? value.replaceAll("\u0001", "\ufffd").replaceAll("\u0002", "\ufffd") : value}\u0001`;
  }
  return key;
}

/** `name="value",...` of a series' identity (labelKey). */
function exposition(key: string): string {
  if (key === "") return "";
  const pairs = key.slice(0, -1).split("\u0001");
  return pairs
    .map((pair) => {
      const at = pair.indexOf("\u0002");
      return `${pair.slice(0, at)}="${escapeLabel(pair.slice(at + 1))}"`;
    })
    .join(",");
}

function escapeLabel(value: string): string {
  if (!/[\\\n"]/.test(value)) return value;
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function series(name: string, labels: string, value: number): string {
  return `${name}${labels ? `{${labels}}` : ""} ${Number.isFinite(value) ? value : Number.isNaN(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf"}`;
}

/** A node of Series' tree: per label name, per value, the node below; at the end, the cell. */
interface Node<C> {
  readonly next: Map<string, Map<string, Node<C>>>;
  cell?: C;
}

/**
 * The series of one metric, each a mutable cell kept under its labelKey. `cell` finds a series
 * from its labels without building a string: a tree of label names and values in the caller's
 * order, whose leaves point at the cell (one cell for the same labels in any order). Metrics are
 * touched about twenty times per turn, where building and hashing the key took 4 % of the CPU
 * (docs/benchmarks.md). The tree holds one path per series and per order its callers use.
 */
class Series<C> {
  readonly byKey = new Map<string, C>();
  readonly #root: Node<C> = { next: new Map() };
  constructor(private readonly make: () => C) {}

  cell(labels: Labels): C {
    let node = this.#root;
    for (const name in labels) {
      // The labels labelKey reads: own properties with a string value. Anything else (a value of
      // another type, an inherited property) takes the key's way, which keeps them apart.
      if (!Object.hasOwn(labels, name)) return this.#byKey(labels);
      const value = labels[name];
      if (typeof value !== "string") return this.#byKey(labels);
      let values = node.next.get(name);
      if (!values) node.next.set(name, (values = new Map()));
      let below = values.get(value);
      if (!below) values.set(value, (below = { next: new Map() }));
      node = below;
    }
    return (node.cell ??= this.#byKey(labels));
  }

  #byKey(labels: Labels): C {
    const key = labelKey(labels);
    let cell = this.byKey.get(key);
    if (!cell) this.byKey.set(key, (cell = this.make()));
    return cell;
  }

  /** The cell of these labels if there is one (reads: no new path). */
  find(labels: Labels): C | undefined {
    return this.byKey.get(labelKey(labels));
  }
}

interface Value {
  value: number;
}

export class Counter implements Metric {
  readonly #values = new Series<Value>(() => ({ value: 0 }));
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    this.#values.cell(labels).value += by;
  }
  get(labels: Labels = {}): number {
    return this.#values.find(labels)?.value ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const [key, { value }] of this.#values.byKey) lines.push(series(this.name, exposition(key), value));
    return lines.join("\n");
  }
}

export class Gauge implements Metric {
  readonly #values = new Series<Value>(() => ({ value: 0 }));
  readonly #collectors: (() => void)[] = [];
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  set(labels: Labels, value: number): void {
    this.#values.cell(labels).value = value;
  }
  get(labels: Labels = {}): number {
    return this.#values.find(labels)?.value ?? 0;
  }
  /** Called right before rendering, to read a value that is cheaper to compute on demand. */
  collect(fn: () => void): void {
    this.#collectors.push(fn);
  }
  render(): string {
    for (const fn of this.#collectors) fn();
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    for (const [key, { value }] of this.#values.byKey) lines.push(series(this.name, exposition(key), value));
    return lines.join("\n");
  }
}

interface Buckets {
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram implements Metric {
  readonly #series: Series<Buckets>;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  ) {
    this.#series = new Series(() => ({ counts: buckets.map(() => 0), sum: 0, count: 0 }));
  }
  observe(labels: Labels, value: number): void {
    const s = this.#series.cell(labels);
    // The first bucket that holds the value; render() adds them up (Prometheus buckets are cumulative).
    let i = 0;
    while (i < this.buckets.length && !(value <= this.buckets[i]!)) i++; // NaN: in no bucket
    if (i < this.buckets.length) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }
  count(labels: Labels = {}): number {
    return this.#series.find(labels)?.count ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [key, s] of this.#series.byKey) {
      const labels = exposition(key);
      const prefix = labels ? `${labels},` : "";
      let below = 0;
      for (const [i, le] of this.buckets.entries()) lines.push(`${this.name}_bucket{${prefix}le="${le}"} ${(below += s.counts[i]!)}`);
      lines.push(`${this.name}_bucket{${prefix}le="+Inf"} ${s.count}`);
      lines.push(series(`${this.name}_sum`, labels, s.sum));
      lines.push(series(`${this.name}_count`, labels, s.count));
    }
    return lines.join("\n");
  }
}

export class Registry {
  readonly #metrics = new Map<string, Metric>();
  readonly #collectors: (() => Promise<void> | void)[] = [];

  /** Runs before each scrape: reads values that live in the database (queue depths, say). */
  onCollect(fn: () => Promise<void> | void): void {
    this.#collectors.push(fn);
  }

  async collect(): Promise<void> {
    for (const fn of this.#collectors) await fn();
  }

  counter(name: string, help: string): Counter {
    return this.#add(name, () => new Counter(name, help)) as Counter;
  }
  gauge(name: string, help: string): Gauge {
    return this.#add(name, () => new Gauge(name, help)) as Gauge;
  }
  histogram(name: string, help: string, buckets?: readonly number[]): Histogram {
    return this.#add(name, () => new Histogram(name, help, buckets)) as Histogram;
  }
  render(): string {
    return `${[...this.#metrics.values()].map((m) => m.render()).join("\n")}\n`;
  }
  #add(name: string, make: () => Metric): Metric {
    let metric = this.#metrics.get(name);
    if (!metric) this.#metrics.set(name, (metric = make()));
    return metric;
  }
}
