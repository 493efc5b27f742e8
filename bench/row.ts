/** One line of the benchmark report; the shape of bench/results/latest.json rows. */
export interface Row {
  readonly id: string;
  readonly name: string;
  /** What `value` measures, e.g. "ns per find+hold+release". */
  readonly metric: string;
  readonly unit: string;
  readonly value: number;
  /** The design it replaces, measured in the same run; null where there is none. */
  readonly baseline: number | null;
  /** What a Node user would otherwise use. */
  readonly peer: number | null;
  /** The physical floor: nothing can be faster. */
  readonly floor: number | null;
  /** The ratio the goal is stated on (see `goal`). */
  readonly ratio: number;
  /** The goal in words, with the comparison it makes. */
  readonly goal: string;
  readonly met: boolean;
  /** Further numbers the row measured, shown in the report. */
  readonly extra?: Readonly<Record<string, number>>;
}

export interface RowContext {
  /** `--quick`: shorter timings, same rows. */
  readonly quick: boolean;
  /** Prints a progress line. */
  progress(message: string): void;
}

/**
 * A row (or several, for a workload measured cold and warm), or undefined when it cannot
 * run here (it says why through ctx.progress).
 */
export type RowFn = (ctx: RowContext) => Promise<Row | Row[] | undefined>;
