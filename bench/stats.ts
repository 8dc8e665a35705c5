// Small statistics the benches share.

/** the middle value (mean of the two middle ones for an even count); NaN for none */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** nearest-rank percentile of an ascending array; NaN for none */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

/** round(x, d) to d decimals, with a per-bench default */
export function rounder(defaultDigits: number): (x: number, d?: number) => number {
  return (x, d = defaultDigits) => Math.round(x * 10 ** d) / 10 ** d;
}
