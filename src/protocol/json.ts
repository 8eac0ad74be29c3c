/**
 * JSON as it crosses the wire. Python peers may send `NaN`/`Infinity` (json.dumps
 * default), which JSON.parse rejects; B19 asks us to read them as null and never emit
 * them (JSON.stringify already turns non-finite numbers into null).
 */
import type { JsonObject } from './types.js'

const decoder = new TextDecoder('utf-8', { fatal: true })
const encoder = new TextEncoder()

export class JsonParseError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'JsonParseError'
  }
}

/** Parses wire JSON; throws JsonParseError for invalid UTF-8 or JSON. */
export function parseWireJson (bytes: Uint8Array | string): unknown {
  let text: string
  try {
    text = typeof bytes === 'string' ? bytes : decoder.decode(bytes)
  } catch {
    throw new JsonParseError('invalid UTF-8')
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    // Only the slow path pays for the Python-literal rewrite.
    const rewritten = replacePythonLiterals(text)
    if (rewritten !== text) {
      try {
        return JSON.parse(rewritten)
      } catch {}
    }
    throw new JsonParseError((err as Error).message)
  }
}

const LITERALS = ['-Infinity', 'Infinity', 'NaN']

/** Replaces bare NaN / Infinity / -Infinity tokens (outside strings) with null. */
function replacePythonLiterals (text: string): string {
  let out = ''
  let i = 0
  let last = 0
  while (i < text.length) {
    const c = text.charCodeAt(i)
    if (c === 0x22) { // skip string literal
      i++
      while (i < text.length) {
        const d = text.charCodeAt(i)
        if (d === 0x5c) { i += 2; continue }
        i++
        if (d === 0x22) break
      }
      continue
    }
    const token = LITERALS.find((t) => text.startsWith(t, i))
    if (token !== undefined) {
      out += text.slice(last, i) + 'null'
      i += token.length
      last = i
      continue
    }
    i++
  }
  return last === 0 ? text : out + text.slice(last)
}

export function encodeJson (value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value))
}

/** The one plain-object check: an object that is neither null nor an array. */
export function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The same check for values that came from JSON (payloads, results, progress). */
export const isJsonObject = isPlainObject as (value: unknown) => value is JsonObject

/** Deterministic JSON (keys sorted recursively), used for pretty output and comparisons. */
export function sortKeysDeep (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeysDeep)
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {}
    for (const key of Object.keys(value).sort()) out[key] = sortKeysDeep(value[key])
    return out
  }
  return value
}

/**
 * ★ Deepest nesting of arrays/objects a request may carry. JSON.parse copes with any
 * depth, but every recursive step after it (stringify, key sorting, the store) would
 * overflow the stack on the 10⁵-level inputs a fuzzer sends; Python's own json module
 * stops near 1000. Such requests get a typed `invalid_params` instead.
 */
export const MAX_JSON_DEPTH = 256

/**
 * Whether the JSON text nests arrays/objects deeper than `limit`. A scan of the bytes
 * (brackets inside strings skipped), run only on frames long enough to be that deep:
 * a valid document of depth d has at least 2d bytes, so small requests cost nothing.
 */
export function exceedsJsonDepth (bytes: Uint8Array, limit: number = MAX_JSON_DEPTH): boolean {
  if (bytes.byteLength <= 2 * limit) return false
  let depth = 0
  let inString = false
  for (let i = 0; i < bytes.byteLength; i++) {
    const c = bytes[i]
    if (inString) {
      if (c === 0x5c) i++ // backslash: skip the escaped byte
      else if (c === 0x22) inString = false
    } else if (c === 0x22) {
      inString = true
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true
    } else if (c === 0x5d || c === 0x7d) {
      depth--
    }
  }
  return false
}
