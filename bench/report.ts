/** The bench's output format: one line per figure with its target. */
export function report (name: string, value: string, target: string): void {
  process.stdout.write(`${name.padEnd(58)} ${value.padStart(14)}   (target ${target})\n`)
}

/** The p-quantile of an ascending array. */
export function pct (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

export function median (values: number[]): number {
  return pct([...values].sort((a, b) => a - b), 0.5)
}
