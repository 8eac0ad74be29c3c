/**
 * `p2p-rpc`: the TaskQueue client CLI (cli.md §1). Every run prints exactly one JSON
 * document on stdout, whose top-level `ok` is true exactly when the exit code is 0.
 * Flags are validated in full before any libp2p node is started, so usage errors are
 * instant and never touch the network.
 */
import './quiet-warnings.js'
import { resolve } from 'node:path'
import { homedir } from 'node:os'
import { peerIdFromString } from '@libp2p/peer-id'
import type { RemoteQueueOptions } from '../client/remote-queue.js'
import { DiscoveryError } from '../client/errors.js'
import { ConfigError, checkMultiaddr, isFalseWord, loadSettings } from '../config/index.js'
import type { Env, Settings } from '../config/index.js'
import { AnnounceFileError, readAnnounceFile } from '../discovery/announce-file.js'
import { createLogger } from '../logger.js'
import type { Logger } from '../logger.js'
import { UsageError, parseCommandLine } from './args.js'
import type { ParsedArgs } from './args.js'
import { EXIT_INTERNAL, EXIT_OK, classifyError } from './exit-codes.js'
import type { ExitCode } from './exit-codes.js'
import { emitDocument, emitText, exitWhenFlushed, isEntryPoint } from './output.js'
import { COMMANDS, PROGRAM } from './p2p-rpc-commands.js'
import type { Action, Doc, Outcome, QueueClient } from './p2p-rpc-commands.js'

export { PROGRAM }
export type { Doc, QueueClient }

export type RunResult =
  | { kind: 'document', code: ExitCode, doc: Doc, pretty: boolean }
  | { kind: 'text', code: ExitCode, text: string }

export interface RunDeps {
  env?: Env
  createQueue?: (opts: RemoteQueueOptions) => QueueClient
  /** Human-readable lines (warnings, usage hints); default: process.stderr. */
  stderr?: (line: string) => void
  logger?: Logger
}

const CLOSE_GRACE_MS = 3000

function defaultStderr (line: string): void {
  process.stderr.write(line.endsWith('\n') ? line : line + '\n')
}

/** `--pretty` is honoured even when the rest of the line does not parse. */
function wantsPretty (argv: readonly string[]): boolean {
  const end = argv.indexOf('--')
  return (end < 0 ? argv : argv.slice(0, end)).includes('--pretty')
}

interface Target { multiaddr: string | null, peerId: string | null, announceFile: string | null }

function globalTarget (a: ParsedArgs, env: Env): Target {
  const ma = a.string('multiaddr')
  let multiaddr: string | null = null
  if (ma !== undefined) {
    const r = checkMultiaddr(ma)
    if (!r.ok) throw new UsageError(`option --multiaddr is not a valid multiaddr: ${r.reason}`)
    multiaddr = r.value
  }
  const pid = a.string('peer-id')
  if (pid !== undefined) {
    try {
      peerIdFromString(pid.trim())
    } catch {
      throw new UsageError(`option --peer-id is not a valid peer id: ${JSON.stringify(pid)}`)
    }
  }
  const af = a.string('announce-file')
  let announceFile: string | null = null
  if (af !== undefined && !isFalseWord(af)) {
    const t = af.trim()
    const home = env.HOME !== undefined && env.HOME.trim() !== '' ? env.HOME : homedir()
    announceFile = resolve(t === '~' ? home : t.startsWith('~/') ? home + t.slice(1) : t)
    try {
      readAnnounceFile(announceFile)
    } catch (err) {
      if (err instanceof AnnounceFileError) throw new UsageError(`option --announce-file: ${err.message}`)
      throw err
    }
  }
  return { multiaddr, peerId: pid?.trim() ?? null, announceFile }
}

function failureDoc (err: unknown): Outcome {
  const f = classifyError(err)
  const doc: Record<string, unknown> = { ok: false, error: f.error, message: f.message }
  // no_peer_found says why, per mechanism, and what to do (issue 22).
  if (err instanceof DiscoveryError && err.reasons !== undefined) Object.assign(doc, { reasons: err.reasons, hint: err.hint })
  return { code: f.exitCode, doc }
}

async function closeBounded (rq: QueueClient, log: (line: string) => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      rq.close(),
      new Promise<void>((resolve) => { timer = setTimeout(() => { log('p2p-rpc: warning: closing the libp2p node took too long'); resolve() }, CLOSE_GRACE_MS) })
    ])
  } catch (err) {
    log(`p2p-rpc: warning: closing the libp2p node failed: ${(err as Error).message}`)
  } finally {
    clearTimeout(timer)
  }
}

/** LOG_LEVEL (validated with the other settings), else `warn`, or `debug` with DEBUG_DIAL. */
function cliLogger (s: Settings): Logger {
  return createLogger('p2p-rpc', s.logLevel ?? (s.debugDial ? 'debug' : 'warn'), s.logFormat)
}

/** Parses, runs and classifies one invocation without touching stdout or exiting. */
export async function run (argv: readonly string[], deps: RunDeps = {}): Promise<RunResult> {
  const env = deps.env ?? process.env
  const stderr = deps.stderr ?? defaultStderr
  let pretty = wantsPretty(argv)
  const document = (o: Outcome): RunResult => ({ kind: 'document', code: o.code, doc: o.doc, pretty })
  let action: Action
  let target: Target
  let settings: Settings
  let commandName: string | null = null
  try {
    const parsed = parseCommandLine(PROGRAM, argv)
    if (parsed.kind !== 'command') return { kind: 'text', code: EXIT_OK, text: parsed.text }
    const args = parsed.args
    commandName = args.command
    pretty = args.flag('pretty')
    settings = loadSettings(env, {}, (m) => stderr(`p2p-rpc: ${m}`), { role: 'client' })
    target = globalTarget(args, env)
    const def = COMMANDS.find((c) => c.spec.name === args.command)
    if (def === undefined) throw new Error(`no handler for ${args.command}`)
    action = def.prepare(args, settings)
  } catch (err) {
    const o = failureDoc(err)
    if (err instanceof UsageError) {
      const where = err.command ?? commandName
      stderr(`p2p-rpc: ${err.message} (see '${PROGRAM.name}${where !== null ? ` ${where}` : ''} --help')`)
    } else if (err instanceof ConfigError) {
      stderr(err.message)
    } else if (o.code === EXIT_INTERNAL) stderr(`p2p-rpc: internal error: ${(err as Error)?.stack ?? String(err)}`)
    return document(o)
  }

  const logger = deps.logger ?? cliLogger(settings)
  const opts: RemoteQueueOptions = { ...target, settings, env, logger }
  let rq: QueueClient | null = null
  try {
    // Loaded lazily: libp2p costs half a second of start-up that --help and usage errors skip.
    if (deps.createQueue !== undefined) {
      rq = deps.createQueue(opts)
    } else {
      const { RemoteQueue } = await import('../client/remote-queue.js')
      rq = new RemoteQueue(opts)
    }
    const outcome = await action(rq)
    return outcome.text !== undefined ? { kind: 'text', code: outcome.code, text: outcome.text } : document(outcome)
  } catch (err) {
    const o = failureDoc(err)
    if (o.code === EXIT_INTERNAL) stderr(`p2p-rpc: internal error: ${(err as Error)?.stack ?? String(err)}`)
    if (settings.debugDial && err instanceof DiscoveryError && err.trace !== undefined) stderr(`p2p-rpc: discovery trace: ${JSON.stringify(err.trace)}`)
    return document(o)
  } finally {
    if (rq !== null) await closeBounded(rq, stderr)
  }
}

/** The program: one document (or help text) on stdout, then exit with its code. */
export async function main (argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const pretty = wantsPretty(argv)
  // First caller wins: a late uncaught exception must neither add a second document
  // nor change the exit code of the one already printed.
  let finishing: Promise<never> | null = null
  const finish = async (result: RunResult): Promise<never> => {
    finishing ??= (async () => {
      if (result.kind === 'text') await emitText(result.text)
      else await emitDocument(result.doc, result.pretty)
      return await exitWhenFlushed(result.code)
    })()
    return await finishing
  }
  // libp2p internals may reject promises nobody awaits; that must not bypass the output contract.
  process.on('unhandledRejection', (reason) => {
    defaultStderr(`p2p-rpc: warning: unhandled rejection: ${reason instanceof Error ? reason.message : String(reason)}`)
  })
  process.on('uncaughtException', (err) => {
    defaultStderr(`p2p-rpc: internal error: ${err.stack ?? err.message}`)
    void finish({ kind: 'document', code: EXIT_INTERNAL, doc: { ok: false, error: 'internal_error', message: err.message }, pretty })
  })
  // A reader that went away (`| head`) must not turn into an uncaught EPIPE.
  process.stdout.on('error', () => {})
  const result = await run(argv).catch((err: unknown): RunResult => ({ kind: 'document', pretty, ...failureDoc(err) }))
  await finish(result)
}

if (isEntryPoint(import.meta.url, 'p2p-rpc.js')) void main()
