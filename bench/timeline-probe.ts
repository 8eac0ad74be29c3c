/**
 * Records when each TCP socket of a process reads or writes, for the `timeline` bench
 * section (timeline.ts). The daemons load it with `--import` and write their events to
 * `$TASKQUEUE_BENCH_TIMELINE_DIR/<role>.json` at exit; the bench process installs it
 * directly. Times come from the monotonic clock, which every process on the machine
 * shares, so events of different processes can be put on one line.
 *
 * Bench-only instrumentation: it wraps `net.Socket` methods for the whole process.
 */
import net from 'node:net'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

export const READ = 0
export const WRITE = 1

/** One socket event: [time µs (monotonic), READ | WRITE, local port, remote port]. */
export type SocketEvent = [number, number, number, number]

const MAX_EVENTS = 400_000
const at = new Float64Array(MAX_EVENTS)
const kind = new Uint8Array(MAX_EVENTS)
const localPort = new Uint16Array(MAX_EVENTS)
const remotePort = new Uint16Array(MAX_EVENTS)
let count = 0

/** Now on the machine-wide monotonic clock, in µs. */
export function nowUs (): number {
  return Number(process.hrtime.bigint() / 1000n)
}

function record (k: number, socket: net.Socket): void {
  if (count >= MAX_EVENTS) return
  at[count] = nowUs()
  kind[count] = k
  localPort[count] = socket.localPort ?? 0
  remotePort[count] = socket.remotePort ?? 0
  count++
}

type Proto = Record<'_write' | '_writev' | 'push', (...args: unknown[]) => unknown>
let restore: (() => void) | null = null

/** Starts recording in this process (idempotent). */
export function installProbe (): void {
  if (restore !== null) return
  const proto = net.Socket.prototype as unknown as Proto
  const own = (name: keyof Proto): boolean => Object.prototype.hasOwnProperty.call(proto, name)
  const saved = { _write: proto._write, _writev: proto._writev, push: proto.push, hadPush: own('push') }
  proto._write = function (this: net.Socket, ...args: unknown[]) { record(WRITE, this); return saved._write.apply(this, args) }
  proto._writev = function (this: net.Socket, ...args: unknown[]) { record(WRITE, this); return saved._writev.apply(this, args) }
  // Readable.prototype.push, shadowed for sockets only; push(null) is the end of input.
  proto.push = function (this: net.Socket, ...args: unknown[]) { if (args[0] != null) record(READ, this); return saved.push.apply(this, args) }
  restore = () => {
    proto._write = saved._write
    proto._writev = saved._writev
    if (saved.hadPush) proto.push = saved.push
    else delete (proto as Partial<Proto>).push
  }
}

export function uninstallProbe (): void {
  restore?.()
  restore = null
}

/** Forgets what was recorded so far. */
export function resetProbe (): void {
  count = 0
}

export function probeEvents (): SocketEvent[] {
  const out: SocketEvent[] = []
  for (let i = 0; i < count; i++) out.push([at[i], kind[i], localPort[i], remotePort[i]])
  return out
}

const dir = process.env.TASKQUEUE_BENCH_TIMELINE_DIR
const role = process.env.TASKQUEUE_BENCH_TIMELINE_ROLE
if (dir !== undefined && role !== undefined) {
  installProbe()
  process.on('exit', () => { writeFileSync(join(dir, `${role}.json`), JSON.stringify(probeEvents())) })
}
