/**
 * The Circuit Relay v2 HOP server (discovery.md §9.1) with limits sized for task
 * payloads, and the relayed-traffic counters `status.nat.relay.traffic` reports.
 *
 * libp2p's relay server counts nothing, so its registrar is wrapped: every HOP stream is
 * observed as it arrives. A CONNECT request on it becomes a circuit; the bytes flowing
 * in on that stream (dialer → target) and out of it (target → dialer) are the circuit's
 * relayed bytes.
 */
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'
import type { CircuitRelayServerComponents, CircuitRelayService } from '@libp2p/circuit-relay-v2'
import type { Connection, Stream, StreamHandler, StreamHandlerOptions } from '@libp2p/interface'
import type { Registrar } from '@libp2p/interface-internal'
import { HOP_PROTOCOL } from './relay-keeper.js'
import { MAX_TIMER_MS } from '../util/timeout-signal.js'

/** "Unlimited" bytes for a circuit, still a finite BigInt for libp2p's accounting. */
const UNLIMITED_BYTES = 2n ** 63n - 1n

export interface RelayServerLimits {
  maxReservations: number
  /** Per circuit; 0 = unlimited. */
  maxCircuitDurationS: number
  /** Per circuit; 0 = unlimited. */
  maxCircuitBytes: number
  reservationTtlMs?: number
}

export interface RelayTraffic {
  circuits_total: number
  circuits_active: number
  reservations_total: number
  bytes_relayed: number
}

export class RelayTrafficCounter {
  private readonly t: RelayTraffic = { circuits_total: 0, circuits_active: 0, reservations_total: 0, bytes_relayed: 0 }

  snapshot (): RelayTraffic {
    return { ...this.t }
  }

  /** Wraps the HOP handler so each stream is counted before libp2p's code reads it. */
  wrap (handler: StreamHandler): StreamHandler {
    return (stream: Stream, connection: Connection) => {
      this.observe(stream)
      return handler(stream, connection)
    }
  }

  private observe (stream: Stream): void {
    let first = true
    let circuit = false
    stream.addEventListener('message', (evt) => {
      const data = evt.data
      this.t.bytes_relayed += data.byteLength
      if (!first) return
      first = false
      // HopMessage: varint length prefix, then field 1 (type): 0x08 <0 RESERVE | 1 CONNECT>.
      const bytes = data.subarray()
      let i = 0
      while (i < bytes.byteLength && (bytes[i] & 0x80) !== 0) i++
      if (bytes[i + 1] !== 0x08) return
      if (bytes[i + 2] === 1) {
        circuit = true
        this.t.circuits_total++
        this.t.circuits_active++
      } else if (bytes[i + 2] === 0) {
        this.t.reservations_total++
      }
    })
    const send = stream.send.bind(stream)
    stream.send = (data) => {
      this.t.bytes_relayed += data.byteLength
      return send(data)
    }
    stream.addEventListener('close', () => {
      if (circuit) this.t.circuits_active--
    }, { once: true })
  }
}

const counters = new WeakMap<object, RelayTrafficCounter>()

/** The counters of a relay server built by `relayServerService`. */
export function relayTrafficOf (server: unknown): RelayTrafficCounter | null {
  return typeof server === 'object' && server !== null ? counters.get(server) ?? null : null
}

export function relayServerService (limits: RelayServerLimits): (components: CircuitRelayServerComponents) => CircuitRelayService {
  const unlimited = limits.maxCircuitDurationS === 0 && limits.maxCircuitBytes === 0
  const init = {
    // Raised from 30 s: a HOP CONNECT waits for the target's STOP answer over its own
    // (possibly slow) link.
    hopTimeout: 30_000,
    reservations: {
      maxReservations: limits.maxReservations,
      reservationTtl: limits.reservationTtlMs ?? 2 * 60 * 60_000,
      // Without any limit the circuit is unlimited and libp2p does not mark it limited.
      applyDefaultLimit: !unlimited,
      // libp2p treats the duration as milliseconds on the relay; 0 cannot mean
      // "unlimited" there (it would abort at once), so it becomes the longest timer.
      defaultDurationLimit: limits.maxCircuitDurationS === 0 ? MAX_TIMER_MS : Math.min(MAX_TIMER_MS, limits.maxCircuitDurationS * 1000),
      defaultDataLimit: limits.maxCircuitBytes === 0 ? UNLIMITED_BYTES : BigInt(limits.maxCircuitBytes)
    }
  }
  return (components) => {
    const counter = new RelayTrafficCounter()
    const registrar: Registrar = new Proxy(components.registrar, {
      get (target, prop, receiver) {
        if (prop === 'handle') {
          return async (protocol: string, handler: StreamHandler, options?: StreamHandlerOptions) =>
            await target.handle(protocol, protocol === HOP_PROTOCOL ? counter.wrap(handler) : handler, options)
        }
        const value: unknown = Reflect.get(target, prop, receiver)
        return typeof value === 'function' ? value.bind(target) : value
      }
    })
    const wrapped = new Proxy(components, {
      get (target, prop, receiver) {
        return prop === 'registrar' ? registrar : Reflect.get(target, prop, receiver)
      }
    })
    const server = circuitRelayServer(init)(wrapped)
    counters.set(server, counter)
    return server
  }
}
