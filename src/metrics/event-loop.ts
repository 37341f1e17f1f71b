/**
 * The event loop's delay, from `monitorEventLoopDelay` (node:perf_hooks, which Bun implements): how
 * late a timer that should fire every 10 ms fires. A statement that holds the loop, a long garbage
 * collection or a burst of work shows here before it shows in any request's latency.
 * `messenger_event_loop_delay_seconds{quantile}` gives the median, p90, p99 and max since the
 * previous scrape (then starts again), so each scrape tells the last interval.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { Registry } from "./registry.ts";

const QUANTILES = [
  ["0.5", 50],
  ["0.9", 90],
  ["0.99", 99],
] as const;

/** Starts measuring; call the returned function at shutdown. */
export function measureEventLoop(metrics: Registry): () => void {
  let histogram: ReturnType<typeof monitorEventLoopDelay>;
  try {
    histogram = monitorEventLoopDelay({ resolution: 10 });
    histogram.enable();
  } catch {
    return () => {}; // a runtime without it: no such metric
  }
  const delay = metrics.gauge(
    "messenger_event_loop_delay_seconds",
    "How late the event loop ran a 10 ms timer, since the previous scrape: quantile 0.5, 0.9, 0.99 and 1 (the max).",
  );
  delay.collect(() => {
    if (histogram.count === 0) return;
    for (const [label, p] of QUANTILES) delay.set({ quantile: label }, histogram.percentile(p) / 1e9);
    delay.set({ quantile: "1" }, histogram.max / 1e9);
    histogram.reset();
  });
  return () => histogram.disable();
}
