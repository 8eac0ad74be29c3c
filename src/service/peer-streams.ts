/**
 * PEER_MAX_STREAMS (README "Security"): the TaskQueue streams one remote peer holds
 * open across all its connections. libp2p's own limit is per connection and protocol
 * (maxInboundStreams), so a peer with PEER_MAX_CONNECTIONS connections could hold that
 * many times more. A stream over the limit is answered once with a typed `busy` (the
 * frame its protocol expects) and closed: never a silent drop, never a hang.
 */
import type { Connection, Stream, StreamHandler } from '@libp2p/interface'
import { encodeFrame, encodeLine, writeBytes } from '../protocol/framing.js'
import { encodeJson } from '../protocol/json.js'
import type { AccessControl } from './access.js'

/** JSON-RPC code of a refusal by limit on MCP++ (wire-protocol.md §2.2 uses it for rate_limited). */
export const RPC_LIMIT_CODE = -32010

export const BUSY_DETAIL = 'too many open streams from this peer (PEER_MAX_STREAMS)'

/** What an MCP++ stream over the limit reads: one JSON-RPC error, id null. */
export function mcpBusyFrame (): Uint8Array {
  return encodeFrame(encodeJson({ jsonrpc: '2.0', id: null, error: { code: RPC_LIMIT_CODE, message: 'busy', data: { detail: BUSY_DETAIL } } }))
}

/** What a legacy NDJSON stream over the limit reads: one `ok:false` reply line. */
export function legacyBusyLine (peerId: string): Uint8Array {
  return encodeLine(encodeJson({ ok: false, error: 'busy', detail: BUSY_DETAIL, retryable: true, peer_id: peerId }))
}

/**
 * Wraps a protocol handler so each stream counts against its peer's PEER_MAX_STREAMS
 * (`access.streamOpened` / `streamClosed`); `refusal` is what a stream over it reads.
 */
export function limitStreamsPerPeer (access: AccessControl, handler: StreamHandler, refusal: () => Uint8Array): StreamHandler {
  return (stream: Stream, connection: Connection) => {
    const peer = connection.remotePeer.toString()
    if (!access.streamOpened(peer)) {
      writeBytes(stream, refusal())
        .then(async () => { await stream.close() })
        .catch((err: unknown) => { stream.abort(err instanceof Error ? err : new Error(String(err))) })
      return
    }
    stream.addEventListener('close', () => { access.streamClosed(peer) }, { once: true })
    return handler(stream, connection)
  }
}
