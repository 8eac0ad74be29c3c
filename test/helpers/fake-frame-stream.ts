/**
 * An in-memory stand-in for a libp2p Stream carrying MCP++ frames: what the code
 * under test sends is decoded into `sent`; the test delivers frames with `deliver`.
 */
import type { Uint8ArrayList } from 'uint8arraylist'
import { encodeFrame } from '../../src/protocol/framing.js'

export type Obj = Record<string, any>

export class FakeFrameStream extends EventTarget {
  readStatus = 'readable'
  status = 'open'
  writeStatus = 'writable'
  /** Every frame sent so far, parsed. */
  sent: Obj[] = []

  send (data: Uint8Array | Uint8ArrayList): boolean {
    let buf = Buffer.from(data instanceof Uint8Array ? data : data.subarray())
    while (buf.byteLength >= 4) {
      const n = buf.readUInt32BE(0)
      this.sent.push(JSON.parse(buf.subarray(4, 4 + n).toString()))
      buf = buf.subarray(4 + n)
    }
    return true
  }

  async onDrain (): Promise<void> {}

  /** Delivers `msgs` as frames of one read. */
  deliver (...msgs: Obj[]): void {
    const data = Buffer.concat(msgs.map((m) => encodeFrame(Buffer.from(JSON.stringify(m)))))
    this.dispatchEvent(Object.assign(new Event('message'), { data }))
  }

  abort (): void {
    if (this.status !== 'open') return
    this.status = 'aborted'
    this.dispatchEvent(new Event('close'))
  }

  async close (): Promise<void> {
    this.status = 'closed'
  }
}
