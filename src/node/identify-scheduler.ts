/**
 * Runs identify on every new connection, as libp2p's `runOnConnectionOpen` does, except
 * that a client about to make its first calls to a peer can hold it back until they
 * are done (IdentifyDeferral below).
 *
 * Why: identify on a fresh connection is the most expensive thing libp2p does besides
 * the handshake — on each side a stream, a signed peer record to check, several peer
 * store writes (measured ~4 ms of client CPU and ~3 ms of the service's per first call,
 * on loopback). It overlapped exactly with the first MCP request and delayed its reply
 * on both event loops, although that call needs nothing from it. Held identifies run
 * as soon as the hold is released, so everything that waits on `peer:identify` (DCUtR,
 * DHT routing, mDNS protocol checks) still gets it, a little later. The peer's own
 * identify of us is untouched, and connections nobody holds are identified at once.
 */
import type { Connection, Libp2p, TypedEventTarget, Libp2pEvents } from '@libp2p/interface'

interface IdentifyService {
  identify: (connection: Connection) => Promise<unknown>
}

/** The name under which the scheduler is registered in `node.services`. */
export const IDENTIFY_SCHEDULER = 'identifyScheduler'

export class IdentifyScheduler {
  private identifyService: IdentifyService | null = null
  private events: TypedEventTarget<Libp2pEvents> | null = null
  /** Holds per remote peer id, and the connections opened to it while held. */
  private readonly holds = new Map<string, { count: number, waiting: Connection[] }>()
  private running = false

  readonly [Symbol.toStringTag] = 'taskqueue-p2p/identify-scheduler'

  /** Wraps identify's factory (created with `runOnConnectionOpen: false`) so the scheduler can call it. */
  wrapIdentify<C, T extends IdentifyService> (factory: (components: C) => T): (components: C) => T {
    return (components: C) => {
      const service = factory(components)
      this.identifyService = service
      return service
    }
  }

  /** The scheduler's own service factory. */
  service (): (components: { events: TypedEventTarget<Libp2pEvents> }) => IdentifyScheduler {
    return (components: { events: TypedEventTarget<Libp2pEvents> }) => {
      this.events = components.events
      return this
    }
  }

  start (): void {
    this.running = true
    this.events?.addEventListener('connection:open', this.onOpen)
  }

  stop (): void {
    this.running = false
    this.events?.removeEventListener('connection:open', this.onOpen)
    this.holds.clear()
  }

  /** Holds identify back for connections to `peerId` until the returned function is called (once). */
  hold (peerId: string): () => void {
    const entry = this.holds.get(peerId) ?? { count: 0, waiting: [] }
    entry.count++
    this.holds.set(peerId, entry)
    let released = false
    return () => {
      if (released) return
      released = true
      if (--entry.count > 0 || this.holds.get(peerId) !== entry) return
      this.holds.delete(peerId)
      // On a later turn: releases come from links closing too, often as the node
      // stops, and a stream opened on a connection that is aborted in the same turn
      // makes yamux throw from a microtask (an uncaught error).
      setImmediate(() => {
        for (const conn of entry.waiting) if (this.running && conn.status === 'open') this.run(conn)
      })
    }
  }

  private readonly onOpen = (evt: CustomEvent<Connection>): void => {
    const conn = evt.detail
    const held = this.holds.get(conn.remotePeer.toString())
    if (held !== undefined) held.waiting.push(conn)
    else this.run(conn)
  }

  private run (conn: Connection): void {
    // Failures are identify's own business (logged there), as with runOnConnectionOpen.
    this.identifyService?.identify(conn).catch(() => {})
  }
}

/** Holds identify for `peerId` on `node` when it has a scheduler (nodes from createTaskQueueNode do). */
export function holdIdentify (node: Libp2p, peerId: string): () => void {
  const scheduler = (node.services as Record<string, unknown>)[IDENTIFY_SCHEDULER]
  if (peerId === '' || !(scheduler instanceof IdentifyScheduler)) return () => {}
  return scheduler.hold(peerId)
}

/** However busy a link stays, its peer is identified after this long. */
export const IDENTIFY_HOLD_MAX_MS = 1000

/**
 * A client link's hold on identify of its peer: taken before it dials, released once
 * the link is idle — no call in flight for a whole event-loop turn, so a first call and
 * whatever the caller sends right after it (a discovery probe's status, then the real
 * request) go first — and at the latest after IDENTIFY_HOLD_MAX_MS.
 */
export class IdentifyDeferral {
  private release: (() => void) | null = null
  private inFlight = 0
  private idleCheck: NodeJS.Immediate | null = null
  private cap: NodeJS.Timeout | null = null

  constructor (private readonly node: Libp2p, private readonly peerId: string) {}

  /** Call before dialling: holds identify of a connection this dial opens. */
  hold (): void {
    if (this.release !== null) return
    this.release = holdIdentify(this.node, this.peerId)
    this.cap = setTimeout(() => { this.end() }, IDENTIFY_HOLD_MAX_MS)
    this.cap.unref()
  }

  callStarted (): void {
    this.inFlight++
  }

  callEnded (): void {
    this.inFlight--
    if (this.release === null || this.inFlight > 0 || this.idleCheck !== null) return
    this.idleCheck = setImmediate(() => {
      this.idleCheck = null
      if (this.inFlight === 0) this.end()
    })
  }

  /** Releases the hold now (link closed, idle, or held long enough). */
  end (): void {
    if (this.idleCheck !== null) clearImmediate(this.idleCheck)
    if (this.cap !== null) clearTimeout(this.cap)
    this.idleCheck = null
    this.cap = null
    const release = this.release
    this.release = null
    release?.()
  }
}
