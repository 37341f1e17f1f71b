import { describe, expect, test } from "bun:test";
import { Counter, Gauge, Histogram } from "../../../src/metrics/registry.ts";

describe("the metrics registry", () => {
  test("the same labels in any order are one series; rendered sorted and escaped", () => {
    const c = new Counter("t_total", "help");
    c.inc({ endpoint: "a", outcome: "ok" });
    c.inc({ outcome: "ok", endpoint: "a" }, 2);
    c.inc({ endpoint: 'q"u\\o\nte', outcome: "ok" });
    c.inc();
    expect(c.get({ outcome: "ok", endpoint: "a" })).toBe(3);
    expect(c.get()).toBe(1);
    expect(c.render().split("\n")).toEqual([
      "# HELP t_total help",
      "# TYPE t_total counter",
      't_total{endpoint="a",outcome="ok"} 3',
      't_total{endpoint="q\\"u\\\\o\\nte",outcome="ok"} 1',
      "t_total 1",
    ]);
  });

  test("a value holding the key's separators stays one label of its own", () => {
    const g = new Gauge("t_gauge", "help");
    g.set({ a: "x\u0001b\u0002y", b: "z" }, 5);
    expect(g.get({ b: "z", a: "x\u0001b\u0002y" })).toBe(5);
    expect(g.render().split("\n")[2]).toBe('t_gauge{a="x\ufffdb\ufffdy",b="z"} 5');
  });

  test("labels that extend, shorten or reorder another set are series of their own, found again in any order", () => {
    const c = new Counter("t_total", "help");
    c.inc({ a: "x" });
    c.inc({ a: "x", b: "y" }, 2);
    c.inc({ b: "y", a: "x" }, 3);
    c.inc({ b: "y" }, 4);
    c.inc({ a: "x\u0001b\u0002y" }, 8);
    c.inc({}, 16);
    c.inc({ a: "x" }, 32);
    expect([c.get({ a: "x" }), c.get({ a: "x", b: "y" }), c.get({ b: "y" }), c.get({ a: "x\u0001b\u0002y" }), c.get()]).toEqual([33, 5, 4, 8, 16]);
    expect(c.get({ a: "y" })).toBe(0);
    expect(c.render().split("\n").slice(2)).toEqual([
      't_total{a="x"} 33',
      't_total{a="x",b="y"} 5',
      't_total{b="y"} 4',
      't_total{a="x\ufffdb\ufffdy"} 8',
      "t_total 16",
    ]);
    const h = new Histogram("t_seconds", "help", [1]);
    h.observe({ stage: "s", endpoint: "e" }, 0.5);
    h.observe({ endpoint: "e", stage: "s" }, 2);
    expect(h.count({ stage: "s", endpoint: "e" })).toBe(2);
    expect(h.render().split("\n").slice(2, 4)).toEqual([
      't_seconds_bucket{endpoint="e",stage="s",le="1"} 1',
      't_seconds_bucket{endpoint="e",stage="s",le="+Inf"} 2',
    ]);
  });

  test("only own labels count, as in the series' key: an inherited property neither joins a series nor moves one", () => {
    const c = new Counter("t_total", "help");
    const inherited = Object.assign(Object.create({ b: "y" }) as Record<string, string>, { a: "x" });
    c.inc(inherited);
    c.inc({ a: "x", b: "y" }, 10);
    c.inc(inherited, 100);
    expect([c.get({ a: "x" }), c.get({ a: "x", b: "y" })]).toEqual([101, 10]);
    expect(c.render().split("\n").slice(2)).toEqual(['t_total{a="x"} 101', 't_total{a="x",b="y"} 10']);
  });

  test("a value that is not a number renders as NaN, not -Inf", () => {
    const g = new Gauge("t_gauge", "help");
    g.set({}, Number.NaN);
    const h = new Histogram("t_seconds", "help", [1]);
    h.observe({}, Number.NaN);
    expect(g.render().split("\n")[2]).toBe("t_gauge NaN");
    expect(h.render().split("\n").slice(4)).toEqual(["t_seconds_sum NaN", "t_seconds_count 1"]);
  });

  test("histogram buckets are cumulative; a value above the last counts in +Inf only", () => {
    const h = new Histogram("t_seconds", "help", [0.1, 1]);
    for (const v of [0.05, 0.1, 0.5, 2]) h.observe({ stage: "s" }, v);
    const odd = new Histogram("t_odd", "help", [1]);
    odd.observe({}, Number.NaN);
    expect(odd.render().split("\n")[2]).toBe('t_odd_bucket{le="1"} 0');
    expect(h.count({ stage: "s" })).toBe(4);
    expect(h.render().split("\n").slice(2)).toEqual([
      't_seconds_bucket{stage="s",le="0.1"} 2',
      't_seconds_bucket{stage="s",le="1"} 3',
      't_seconds_bucket{stage="s",le="+Inf"} 4',
      't_seconds_sum{stage="s"} 2.65',
      't_seconds_count{stage="s"} 4',
    ]);
  });
});
