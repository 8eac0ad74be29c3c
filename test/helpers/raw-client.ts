/**
 * A deliberately dumb client that speaks the wire protocol byte by byte, the way the
 * original Python client does (wire-protocol.md §2.4, §3), so tests can check
 * compatibility and send malformed input our own client never would.
 */
import { multiaddr } from '@multiformats/multiaddr'
import type { Stream } from '@libp2p/interface'
import { createTaskQueueNode } from '../../src/node/create-node.js'
import type { TaskQueueNode } from '../../src/node/create-node.js'
import { StreamReader, encodeFrame, writeBytes } from '../../src/protocol/framing.js'
import { LEGACY_PROTOCOL, MCP_PROTOCOL } from '../../src/protocol/ids.js'

const enc = new TextEncoder()

export class RawClient {
  private constructor (readonly node: TaskQueueNode, readonly target: string) {}

  static async create (target: string): Promise<RawClient> {
    return new RawClient(await createTaskQueueNode(), target)
  }

  /** Another client on the same node (same peer id), e.g. for a target known only later. */
  static async attach (node: TaskQueueNode, target: string): Promise<RawClient> {
    return new RawClient(node, target)
  }

  async open (protocol: string = MCP_PROTOCOL): Promise<RawStream> {
    const stream = await this.node.dialProtocol(multiaddr(this.target), protocol)
    return new RawStream(stream)
  }

  /** The original client: a fresh stream, initialize (id 1), one tools/call (id 1), close. */
  async originalCall (envelope: Record<string, unknown>): Promise<unknown> {
    const s = await this.open()
    await s.sendJson({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { clientInfo: { name: 'ipfs_accelerate_py' }, profiles: ['mcp++/p2p-transport'] } })
    const init = await s.readJson()
    if (typeof init !== 'object' || init === null || !('result' in init)) throw new Error(`initialize failed: ${JSON.stringify(init)}`)
    await s.sendJson({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'task_queue.rpc', arguments: envelope } })
    const reply = await s.readJson() as { result?: { content?: unknown } }
    await s.close()
    return reply.result?.content
  }

  /** One legacy NDJSON request. */
  async legacyCall (line: string | Uint8Array): Promise<unknown> {
    const s = await this.open(LEGACY_PROTOCOL)
    await s.sendRaw(typeof line === 'string' ? enc.encode(line) : line)
    const reply = await s.reader.readLine(16 * 1024 * 1024)
    await s.close()
    return reply === null ? null : JSON.parse(new TextDecoder().decode(reply))
  }

  async close (): Promise<void> {
    await this.node.stop()
  }
}

export class RawStream {
  readonly reader: StreamReader
  constructor (readonly stream: Stream) {
    this.reader = new StreamReader(stream)
  }

  async sendJson (msg: unknown): Promise<void> {
    await writeBytes(this.stream, encodeFrame(enc.encode(JSON.stringify(msg))))
  }

  async sendFrame (body: Uint8Array): Promise<void> {
    await writeBytes(this.stream, encodeFrame(body))
  }

  async sendRaw (bytes: Uint8Array): Promise<void> {
    await writeBytes(this.stream, bytes)
  }

  /** Next frame as JSON, or null at end of stream. */
  async readJson (): Promise<unknown> {
    const body = await this.reader.readFrame(64 * 1024 * 1024)
    return body === null ? null : JSON.parse(new TextDecoder().decode(body))
  }

  async close (): Promise<void> {
    await this.stream.close().catch(() => {})
  }
}
