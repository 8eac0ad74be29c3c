/** How a PostgreSQL failure reaches a caller of the store. */
import { TaskQueueError } from '../../protocol/errors.js'

/** A driver or connection failure as the retryable `busy` the protocol knows; typed errors pass. */
export function storeError (err: unknown): unknown {
  if (err instanceof TaskQueueError) return err
  const code = (err as { code?: unknown } | null)?.code
  // Serialization / deadlock / connection classes: the caller may retry.
  if (typeof code === 'string' && (code.startsWith('40') || code.startsWith('08') || code === '57P01' || code === '53300')) {
    return new TaskQueueError('busy', `database: ${(err as Error).message}`)
  }
  if (typeof code !== 'string' && err instanceof Error && /connect|terminat|ECONN|timeout/i.test(err.message)) {
    return new TaskQueueError('busy', `database unreachable: ${err.message}`)
  }
  return err
}
