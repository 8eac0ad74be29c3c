/** Small helpers of the worker (worker.ts): option checks, result coercion, yielding. */
import type { JsonValue } from '../protocol/types.js'

/** Resolves after the current turn's microtasks and ticks (and the I/O they queued) have run. */
export async function yieldToIo (): Promise<void> {
  await new Promise<void>((resolve) => { setImmediate(resolve) })
}

export function errorMessage (err: unknown): string {
  if (err instanceof Error) return err.message !== '' ? err.message : err.name
  if (typeof err === 'string' && err !== '') return err
  try {
    const s = JSON.stringify(err)
    return s === undefined || s === '' ? String(err) : s
  } catch {
    return String(err)
  }
}

/** Plain JSON copy of a handler result; undefined (and functions) become null. */
export function toJsonValue (value: unknown): JsonValue {
  if (value === undefined) return null
  const text = JSON.stringify(value)
  return text === undefined ? null : JSON.parse(text) as JsonValue
}

export function intOption (name: string, v: number | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`${name} must be an integer in ${min}..${max}`)
  return v
}

export function numOption (name: string, v: number | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt
  if (typeof v !== 'number' || Number.isNaN(v) || v < min || v > max) throw new RangeError(`${name} must be a number in ${min}..${max}`)
  return v
}
