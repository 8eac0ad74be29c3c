/**
 * A scripted MCP peer on an in-process libp2p node: it records each request (and how
 * many bytes were already buffered behind it) and answers through `reply`, so client
 * tests can play a service — the original one included — without a real one.
 */
import type { TestContext } from 'node:test'
import type { Stream } from '@libp2p/interface'
import { createTaskQueueNode } from '../../src/node/create-node.js'
import type { TaskQueueNode } from '../../src/node/create-node.js'
import { FrameWriter, StreamReader } from '../../src/protocol/framing.js'
import { MCP_PROTOCOL } from '../../src/protocol/ids.js'

type Obj = Record<string, any>

export interface Seen { method: string, buffered: number, req: Obj }

export interface ScriptedPeer { node: TaskQueueNode, seen: Seen[], streams: number }

export type ScriptedReply = (req: Obj) => Promise<Obj> | Obj

/** initialize → limits; every tools/call → `{ok: true, echo: <arguments>}`. */
export function okReply (req: Obj): Obj {
  if (req.method === 'initialize') return { result: { ok: true, limits: { max_frames: 128, rate_capacity: 128, rate_refill_per_sec: 128 } } }
  return { result: { content: { ok: true, echo: req.params.arguments } } }
}

export async function scriptedMcpPeer (t: TestContext, reply: ScriptedReply = okReply): Promise<ScriptedPeer> {
  const node = await createTaskQueueNode({ listen: ['/ip4/127.0.0.1/tcp/0'] })
  t.after(async () => { await node.stop() })
  const state: ScriptedPeer = { node, seen: [], streams: 0 }
  await node.handle(MCP_PROTOCOL, (stream: Stream) => {
    state.streams++
    void (async () => {
      const reader = new StreamReader(stream)
      const writer = new FrameWriter(stream)
      for (;;) {
        const body = await reader.readFrame(1 << 20).catch(() => null)
        if (body === null) return
        const req = JSON.parse(Buffer.from(body).toString()) as Obj
        state.seen.push({ method: req.method, buffered: reader.buffered, req })
        await writer.writeJson(JSON.stringify({ jsonrpc: '2.0', id: req.id, ...await reply(req) }))
      }
    })()
  }, { runOnLimitedConnection: true })
  return state
}
