/** Transport counters reported under status detail `transport.mcp_p2p.stats` (wire-protocol.md §2.2). */
export interface McpStats {
  sessions_started: number
  sessions_closed: number
  initialized_sessions: number
  frame_errors: number
  rate_limited: number
  unauthorized: number
  internal_errors: number
}

export class ServiceStats {
  readonly mcp: McpStats = {
    sessions_started: 0,
    sessions_closed: 0,
    initialized_sessions: 0,
    frame_errors: 0,
    rate_limited: 0,
    unauthorized: 0,
    internal_errors: 0
  }

  readonly legacy = { requests: 0, frame_errors: 0 }
  /** Requests per canonical op name. */
  readonly ops = new Map<string, number>()

  countOp (op: string): void {
    this.ops.set(op, (this.ops.get(op) ?? 0) + 1)
  }

  snapshot (): Record<string, unknown> {
    return { ...this.mcp, legacy: { ...this.legacy }, ops: Object.fromEntries(this.ops) }
  }
}
