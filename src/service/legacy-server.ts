/**
 * Service side of the legacy NDJSON protocol (wire-protocol.md §3): one request line,
 * one reply line, then the stream closes.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { FrameTooLargeError, StreamReader, encodeLine, writeBytes } from '../protocol/framing.js'
import { JsonParseError, MAX_JSON_DEPTH, encodeJson, exceedsJsonDepth, isPlainObject, parseWireJson } from '../protocol/json.js'
import type { Envelope } from '../protocol/coerce.js'
import { ORIGINAL_CLIENT_MAX_FRAME } from '../protocol/ids.js'
import type { Dispatch } from './dispatch.js'
import { errorReply } from './dispatch.js'
import type { Reply, ServiceContext } from './context.js'
import type { Logger } from '../logger.js'

export function createLegacyHandler (ctx: ServiceContext, dispatch: Dispatch, log: Logger): (stream: Stream, connection: Connection) => void {
  async function serve (stream: Stream, connection: Connection): Promise<void> {
    ctx.stats.legacy.requests++
    const reader = new StreamReader(stream)
    const closed = new AbortController()
    stream.addEventListener('close', () => closed.abort(), { once: true })
    const idle = setTimeout(() => stream.abort(new Error('idle timeout')), ctx.options.mcp.idleTimeoutMs)
    let line: Uint8Array | null
    try {
      line = await reader.readLine(ORIGINAL_CLIENT_MAX_FRAME)
    } catch (err) {
      if (!(err instanceof FrameTooLargeError)) throw err
      ctx.stats.legacy.frame_errors++
      await send(stream, errorReply(ctx, 'frame_too_large'))
      return
    } finally {
      clearTimeout(idle)
    }
    if (line === null) return
    let request: unknown
    try {
      request = parseWireJson(line)
    } catch (err) {
      if (!(err instanceof JsonParseError)) throw err
      ctx.stats.legacy.frame_errors++
      await send(stream, errorReply(ctx, 'invalid_json'))
      return
    }
    if (!isPlainObject(request)) {
      ctx.stats.legacy.frame_errors++
      await send(stream, errorReply(ctx, 'invalid_message'))
      return
    }
    if (exceedsJsonDepth(line)) {
      await send(stream, errorReply(ctx, 'invalid_params', `request nested deeper than ${MAX_JSON_DEPTH} levels`))
      return
    }
    const env: Envelope = { ...request }
    delete env._remote_peer_id
    await send(stream, await dispatch(env, { remotePeerId: connection.remotePeer.toString(), signal: closed.signal }))
  }

  async function send (stream: Stream, reply: Reply): Promise<void> {
    await writeBytes(stream, encodeLine(encodeJson(reply)))
  }

  return (stream, connection) => {
    serve(stream, connection)
      .catch((err: unknown) => {
        log.debug({ err }, 'legacy stream failed')
        stream.abort(err instanceof Error ? err : new Error(String(err)))
      })
      .finally(() => {
        if (stream.status === 'open') stream.close().catch(() => stream.abort(new Error('close failed')))
      })
  }
}
