/**
 * What a worker needs from wherever it gets its tasks (`QueueBackend`): a remote service
 * over libp2p (remote-backend.ts) or the SQLite file of a `serve` on the same host
 * (local-backend.ts). Both report failures as `BackendError` so the worker decides
 * retry/abort by code, never by message (B16).
 */
import type { ClaimedTask, JsonObject, JsonValue } from '../protocol/types.js'
import { TaskQueueError } from '../protocol/errors.js'
import { ClientError, ProtocolError, RemoteError } from '../client/errors.js'
import { backoffDelay } from '../util/backoff.js'

export interface BackendClaimOptions {
  workerId: string
  /** Alias-expanded claim filter; null = any type. */
  taskTypes: readonly string[] | null
  /** '' = no session. */
  session: string
  leaseS: number
  maxTasks: number
  /** Long-poll: block up to this long for work (0 = answer at once). */
  waitS: number
  /** Idle pause after an immediate empty reply from a service without long-poll. */
  pollIntervalS?: number
  /** Ends a waiting claim early with no tasks (worker shutdown). */
  signal?: AbortSignal
}

export interface BackendCompleteOptions {
  taskId: string
  workerId: string
  status: 'completed' | 'failed' | 'cancelled'
  /** Any JSON; a non-object is wrapped as `{result: x}` by the service. */
  result?: JsonValue
  error?: string
  /** ★ On a failure: true = retry with backoff while attempts remain; false = fail for good. */
  retry?: boolean
}

export interface BackendReleaseOptions {
  taskId: string
  workerId: string
  reason?: string
  delayS?: number
}

export interface BackendHeartbeatOptions {
  taskId: string
  workerId: string
  leaseS: number
  progress?: JsonObject
}

export interface QueueBackend {
  /** 'remote', 'local', or a custom backend's name (for logs and status). */
  readonly kind: string
  claim (opts: BackendClaimOptions): Promise<ClaimedTask[]>
  complete (opts: BackendCompleteOptions): Promise<{ replayed: boolean }>
  release (opts: BackendReleaseOptions): Promise<void>
  heartbeat (opts: BackendHeartbeatOptions): Promise<{ lease_until: number }>
  close (): Promise<void>
}

/** Codes meaning this worker no longer holds the task (B4); its result would be refused. */
export const LEASE_LOST_CODES: ReadonlySet<string> = new Set(['not_owner', 'task_not_running', 'task_not_found'])

export class BackendError extends Error {
  /** A §5 reply code, or a client transport code (dial_failed, no_peer_found, …). */
  readonly code: string
  /** Worth retrying the same call later (transport failure, `busy`, `timeout`). */
  readonly transient: boolean
  /** The queue itself could not be reached (no reply at all). */
  readonly unreachable: boolean

  constructor (code: string, message: string, opts: { transient: boolean, unreachable: boolean, cause?: unknown }) {
    super(message, { cause: opts.cause })
    this.name = 'BackendError'
    this.code = code
    this.transient = opts.transient
    this.unreachable = opts.unreachable
  }
}

export function isLeaseLost (err: unknown): boolean {
  return err instanceof BackendError && LEASE_LOST_CODES.has(err.code)
}

/** Resolves after `ms`, or early (without throwing) when the signal fires. */
export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 || signal?.aborted === true) return
  await new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}

/** A function, not an inline test: TS would keep a narrowing from before an await. */
export function aborted (signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}

/** A worker's retry delay (half to all of the capped ceiling): spreads reconnecting workers apart. */
export function backoffMs (attempt: number, capMs = 5000, baseMs = 100): number {
  return backoffDelay(attempt, { initialMs: baseMs, maxMs: capMs, jitter: 'half' })
}

/**
 * Completes with retries on transient failures: complete is idempotent and a
 * `replayed:true` reply means an earlier attempt already landed, so retrying can
 * never apply a result twice. Gives up when the signal fires or `maxMs` passes.
 */
export async function completeWithRetry (
  backend: QueueBackend,
  opts: BackendCompleteOptions,
  retry: { signal?: AbortSignal, maxMs?: number, onRetry?: (err: BackendError, attempt: number) => void } = {}
): Promise<{ replayed: boolean }> {
  const deadline = Date.now() + (retry.maxMs ?? 600_000)
  for (let attempt = 0; ; attempt++) {
    try {
      return await backend.complete(opts)
    } catch (err) {
      const e = toBackendError(err)
      if (!e.transient || retry.signal?.aborted === true || Date.now() >= deadline) throw e
      retry.onRetry?.(e, attempt)
      await sleep(Math.min(backoffMs(attempt), Math.max(0, deadline - Date.now())), retry.signal)
      if (aborted(retry.signal)) throw e
    }
  }
}

/** Classifies client, store and unknown failures into one shape. */
export function toBackendError (err: unknown): BackendError {
  if (err instanceof BackendError) return err
  if (err instanceof RemoteError) {
    return new BackendError(err.code, err.message, { transient: err.retryable, unreachable: false, cause: err })
  }
  if (err instanceof ProtocolError) {
    // Something answered, but not a TaskQueue: as good as no service for this worker.
    return new BackendError(err.code, err.message, { transient: true, unreachable: true, cause: err })
  }
  if (err instanceof ClientError) {
    return new BackendError(err.code, err.message, { transient: true, unreachable: true, cause: err })
  }
  if (err instanceof TaskQueueError) {
    return new BackendError(err.code, err.message, { transient: err.retryable, unreachable: false, cause: err })
  }
  const message = err instanceof Error ? err.message : String(err)
  return new BackendError('internal_error', message, { transient: false, unreachable: false, cause: err })
}
