/**
 * Median nanoseconds per operation of each task, measured in one tinybench run. Each
 * sample runs the operation `batch` times, so tinybench's per-sample overhead (~40 ns)
 * is spread over the batch.
 */
export async function medianNsPerOp(
  tasks: Record<string, (batch: number) => void | Promise<void>>,
  options: { quick: boolean; batch: number },
): Promise<Record<string, number>> {
  const { Bench } = await import('tinybench'); // ESM-only package; this build is CommonJS
  const bench = new Bench({ time: options.quick ? 150 : 600, warmupTime: options.quick ? 30 : 100 });
  for (const [name, fn] of Object.entries(tasks)) bench.add(name, () => fn(options.batch));
  await bench.run();
  const out: Record<string, number> = {};
  for (const task of bench.tasks) {
    const r = task.result;
    if (r.state !== 'completed') throw new Error(`bench task ${task.name} did not complete: ${r.state}`);
    out[task.name] = (r.latency.p50 * 1e6) / options.batch;
  }
  return out;
}

/** Median wall time in ms of `runs` runs of an async job. */
export async function medianMs(runs: number, job: () => Promise<void>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await job();
    times.push(performance.now() - t0);
  }
  return median(times);
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const round = (x: number, digits = 3): number => Number(x.toPrecision(digits));
