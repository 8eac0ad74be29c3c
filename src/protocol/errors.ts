/**
 * The reply error codes of wire-protocol.md §5. Every `ok:false` reply the service
 * sends carries one of these; the client classifies failures by code, never by text.
 */
export const ERROR_CODES = [
  'unauthorized',
  // ★ The caller's role (README "Roles") does not include the op.
  'forbidden',
  // ★ A per-peer limit (README "Security"); retryable after a pause.
  'rate_limited',
  'unknown_op',
  'frame_too_large',
  'invalid_json',
  'invalid_message',
  'missing_worker_id',
  'missing_task_id',
  'missing_peer_id',
  'missing_key',
  'missing_tool_name',
  'tools_disabled',
  'cache_disabled',
  'task_not_found',
  'task_not_running',
  'not_owner',
  'idempotency_conflict',
  'value_too_large',
  'key_too_long',
  'tool_not_found',
  'invalid_params',
  'tool_error',
  'events_disabled',
  'timeout',
  'busy',
  'internal_error'
] as const

export type ErrorCode = (typeof ERROR_CODES)[number]

const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['timeout', 'busy', 'rate_limited'])

export function isRetryableCode (code: string): boolean {
  return RETRYABLE.has(code as ErrorCode)
}

/**
 * A failure the service reports as a reply (`{ok:false, error:code}`); thrown by the
 * store and the op handlers, turned into a reply in exactly one place (service/dispatch).
 */
export class TaskQueueError extends Error {
  readonly code: ErrorCode
  readonly detail?: string
  readonly extra?: Record<string, unknown>

  constructor (code: ErrorCode, detail?: string, extra?: Record<string, unknown>) {
    super(detail === undefined ? code : `${code}: ${detail}`)
    this.name = 'TaskQueueError'
    this.code = code
    this.detail = detail
    this.extra = extra
  }

  get retryable (): boolean {
    return isRetryableCode(this.code)
  }
}
