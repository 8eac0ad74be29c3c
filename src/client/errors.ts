/**
 * Typed client failures (B16). Callers and the CLI classify by class and `code`,
 * never by message text. `code` is what the CLI prints as `error` (cli.md §1.4).
 */
import { isRetryableCode } from '../protocol/errors.js'

export type ClientErrorCode =
  | 'no_peer_found'
  | 'dial_failed'
  | 'deadline_exceeded'
  | 'protocol_error'
  | 'protocol_not_supported'
  | 'remote_error'

export abstract class ClientError extends Error {
  abstract readonly code: string
  /** True when the request may have reached the service (affects which ops may be retried). */
  sent = false
}

/** No mechanism produced a TaskQueue peer. `trace` is the discovery trace. */
export class DiscoveryError extends ClientError {
  readonly code = 'no_peer_found'
  constructor (
    message: string,
    readonly trace?: unknown,
    /** Each mechanism's last reason, and one hint for the commonest cause (discovery/failure.ts). */
    readonly reasons?: Record<string, string>,
    readonly hint?: string
  ) {
    super(message)
    this.name = 'DiscoveryError'
  }
}

/** The connection could not be made or was lost. */
export class DialError extends ClientError {
  readonly code = 'dial_failed'
  constructor (message: string, options?: { cause?: unknown, sent?: boolean }) {
    super(message, { cause: options?.cause })
    this.name = 'DialError'
    this.sent = options?.sent ?? false
  }
}

/** The deadline passed before a reply. */
export class DeadlineError extends ClientError {
  readonly code = 'deadline_exceeded'
  constructor (message: string, sent = true) {
    super(message)
    this.name = 'DeadlineError'
    this.sent = sent
  }
}

/** The peer answered, but not as a TaskQueue service. */
export class ProtocolError extends ClientError {
  readonly code = 'protocol_error'
  constructor (message: string, sent = true) {
    super(message)
    this.name = 'ProtocolError'
    this.sent = sent
  }
}

/** The peer refused the protocol during negotiation (try the next protocol in order). */
export class ProtocolNotSupportedError extends ClientError {
  readonly code = 'protocol_not_supported'
  constructor (message: string) {
    super(message)
    this.name = 'ProtocolNotSupportedError'
  }
}

/** The service replied `ok:false`. */
export class RemoteError extends ClientError {
  readonly code: string
  readonly reply: Record<string, unknown>
  constructor (reply: Record<string, unknown>) {
    const code = typeof reply.error === 'string' ? reply.error : 'remote_error'
    super(`service replied ${code}${typeof reply.detail === 'string' ? `: ${reply.detail}` : ''}`)
    this.name = 'RemoteError'
    this.code = code
    this.reply = reply
    this.sent = true
  }

  get retryable (): boolean {
    return this.reply.retryable === true || isRetryableCode(this.code)
  }
}
