/**
 * JSON as it crosses the wire. Python peers may send `NaN`/`Infinity` (json.dumps
 * default), which JSON.parse rejects; B19 asks us to read them as null and never emit
 * them (JSON.stringify already turns non-finite numbers into null).
 */

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

export function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

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
