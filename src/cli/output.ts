/**
 * stdout discipline for the CLIs (cli.md §1.3): exactly one JSON document plus a
 * newline per run, written in one `write`, and the process exits only once it has
 * been handed to the OS — `process.exit` right after a write to a pipe can lose it.
 */
import { realpathSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { packageRoot } from '../package-root.js'
import { sortKeysDeep } from '../protocol/json.js'

/** Compact on one line, or 2-space indented with keys sorted recursively. Non-ASCII stays raw. */
export function formatDocument (doc: unknown, pretty = false): string {
  const text = pretty ? JSON.stringify(sortKeysDeep(doc), null, 2) : JSON.stringify(doc)
  // undefined / functions at the top level: still one JSON document.
  return (text ?? 'null') + '\n'
}

/** Resolves once `text` has been flushed (or stdout is gone: EPIPE is not our failure). */
export async function writeStdout (text: string, stream: NodeJS.WritableStream = process.stdout): Promise<void> {
  await new Promise<void>((resolve) => {
    const onError = (): void => resolve()
    stream.once('error', onError)
    stream.write(text, () => {
      stream.removeListener('error', onError)
      resolve()
    })
  })
}

let documentWritten = false

/**
 * Writes the run's single document. Later calls are ignored, so a late failure (an
 * uncaught exception while closing) can never add a second document.
 */
export async function emitDocument (doc: unknown, pretty = false, stream: NodeJS.WritableStream = process.stdout): Promise<boolean> {
  if (documentWritten) return false
  documentWritten = true
  let text: string
  try {
    text = formatDocument(doc, pretty)
  } catch (err) {
    // Cycles or BigInt would be a CLI bug; the contract still wants one JSON document.
    text = formatDocument({ ok: false, error: 'internal_error', message: `cannot serialise output: ${(err as Error).message}` }, pretty)
  }
  await writeStdout(text, stream)
  return true
}

/** Whether a document was already written by this process. */
export function documentEmitted (): boolean {
  return documentWritten
}

/** Text output (`--help`, `--version`): the only non-JSON stdout. */
export async function emitText (text: string): Promise<void> {
  documentWritten = true
  await writeStdout(text.endsWith('\n') ? text : text + '\n')
}

/** Exits with `code` once stdout and stderr are drained; libp2p timers must not keep us alive. */
export async function exitWhenFlushed (code: number): Promise<never> {
  await Promise.all([writeStdout(''), writeStdout('', process.stderr)])
  process.exit(code)
}

/**
 * True when this module is the program being run: either directly
 * (`node dist/src/cli/x.js`, `node dist/bundle/x.js`) or through the `bin/<binFile>`
 * launcher, which imports it. Tests that import the module are neither.
 */
export function isEntryPoint (moduleUrl: string, binFile: string): boolean {
  const script = process.argv[1]
  if (script === undefined || script === '') return false
  let real: string
  try {
    real = realpathSync(resolve(script))
  } catch {
    return false
  }
  const root = packageRoot(moduleUrl)
  const paths = [fileURLToPath(moduleUrl), ...(root === undefined ? [] : [join(root, 'bin', binFile)])]
  const candidates = paths.map((p) => { try { return realpathSync(p) } catch { return p } })
  return candidates.includes(real)
}
