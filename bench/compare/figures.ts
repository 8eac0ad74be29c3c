/**
 * The printed figures of a side-by-side section (`--only bullmq`, `--only graphile`): each
 * figure's value per round on every side, and per round the ratio of each of our sides
 * to the reference (the first side: BullMQ, graphile-worker) with its median.
 */
import { median } from '../report.js'

/** A side of a comparison: its key in `add` and the label printed before its values. */
export interface SideLabel { key: string, label: string }

interface Figure { name: string, unit: string, digits: number, target: string, values: Map<string, number[]> }

export class Figures {
  private readonly list: Figure[] = []
  private readonly sides: readonly SideLabel[]

  /** `sides[0]` is the reference every ratio divides by. */
  constructor (sides: readonly SideLabel[]) {
    this.sides = sides
  }

  add (name: string, side: string, value: number, unit: string, digits: number, target = 'reported'): void {
    let f = this.list.find((x) => x.name === name)
    if (f === undefined) {
      f = { name, unit, digits, target, values: new Map() }
      this.list.push(f)
    }
    const values = f.values.get(side) ?? []
    values.push(value)
    f.values.set(side, values)
  }

  print (title: string): void {
    const [reference, ...others] = this.sides
    const width = Math.max(8, ...this.sides.map((s) => s.label.length + 2))
    process.stdout.write(`\n${title}\n`)
    for (const f of this.list) {
      const fmt = (v: number): string => v.toLocaleString('en-US', { minimumFractionDigits: f.digits, maximumFractionDigits: f.digits })
      const ref = f.values.get(reference.key) ?? []
      process.stdout.write(`  ${f.name}${f.unit === '' ? '' : ` (${f.unit})`}\n`)
      for (const side of this.sides) {
        const v = f.values.get(side.key) ?? []
        if (v.length > 0) process.stdout.write(`    ${side.label.padEnd(width)}${v.map(fmt).join(' | ')}   median ${fmt(median(v))}\n`)
      }
      let printedRatio = false
      for (const side of others) {
        const v = f.values.get(side.key) ?? []
        const ratios = v.map((x, i) => ref[i] === undefined || ref[i] === 0 ? NaN : x / ref[i]).filter((r) => Number.isFinite(r))
        // A growth factor is each side's own; dividing one by the other means nothing.
        if (ratios.length === 0 || f.unit === '×') continue
        printedRatio = true
        process.stdout.write(`    ratio ${side.label}/${reference.label} per round ${ratios.map((r) => r.toFixed(2)).join(' | ')}   median ${median(ratios).toFixed(2)}×   (target ${f.target})\n`)
      }
      if (!printedRatio && f.target !== 'reported') process.stdout.write(`    (target ${f.target})\n`)
    }
  }
}
