/**
 * `status.nat` (discovery.md §9.3) built from the node's NAT services, plus the facts the
 * doctor needs. Services that are not configured report as disabled, never as errors.
 */
import type { Libp2p } from '@libp2p/interface'
import type { Settings } from '../config/index.js'
import type { AutoNatService, AutoNatSnapshot } from './autonat.js'
import type { HolePunchService, HolePunchSnapshot } from './holepunch.js'
import type { RelayReservationKeeper, RelayKeeperSnapshot } from './relay-keeper.js'
import { relayTrafficOf } from './relay-server.js'
import type { RelayTraffic } from './relay-server.js'
import { NAT_SERVICES } from './parts.js'
import { ipPortOf } from './addrs.js'

/** `status.nat` (discovery.md §9.3): what every service reports, with or without NAT services. */
export interface NatReport {
  autonat: { supported: boolean, status: 'unknown' | 'public' | 'private' | 'unavailable', code: number | null }
  relay: { enabled: boolean, hop: boolean, reservations: Array<{ relay_peer_id: string, addr: string, expires_at: number | null }> }
  holepunch: { enabled: boolean, attempts: number, successes: number }
  public_ip: string | null
}

/** The report of a service embedded without a node (no NAT services at all). */
export const NAT_UNAVAILABLE: NatReport = {
  autonat: { supported: false, status: 'unavailable', code: null },
  relay: { enabled: false, hop: false, reservations: [] },
  holepunch: { enabled: false, attempts: 0, successes: 0 },
  public_ip: null
}

export interface NatStatus extends NatReport {
  relay: NatReport['relay'] & {
    /** HOP nodes: reservations held for others, and what went through them. */
    serving?: { reservations: number, max_reservations: number, max_circuit_duration_s: number, max_circuit_bytes: number } & RelayTraffic
  }
  holepunch: NatReport['holepunch'] & { recent?: HolePunchSnapshot['recent'] }
  /** The public IP peers see us connect from (may be a NAT router's). */
  observed_ip: string | null
}

function service<T> (node: Libp2p, name: string): T | null {
  const services = node.services as Record<string, unknown>
  return (services[name] as T | undefined) ?? null
}

export function autonatOf (node: Libp2p): AutoNatService | null {
  return service<AutoNatService>(node, NAT_SERVICES.autonat)
}

export function relayKeeperOf (node: Libp2p): RelayReservationKeeper | null {
  return service<RelayReservationKeeper>(node, NAT_SERVICES.relayKeeper)
}

export function holePunchOf (node: Libp2p): HolePunchService | null {
  return service<HolePunchService>(node, NAT_SERVICES.holepunch)
}

export function natReport (node: Libp2p, s: Settings): NatStatus {
  const autonat = autonatOf(node)
  const a: AutoNatSnapshot | null = autonat?.snapshot() ?? null
  const keeper: RelayKeeperSnapshot | null = relayKeeperOf(node)?.snapshot() ?? null
  const punch = holePunchOf(node)?.snapshot() ?? null
  const server = service<{ reservations?: { size: number } }>(node, NAT_SERVICES.relayServer)
  const traffic = relayTrafficOf(server)
  const confirmedIp = a?.status === 'public' ? a.confirmed.map((x) => ipPortOf(x)?.ip).find((ip) => ip !== undefined) ?? null : null
  const report: NatStatus = {
    autonat: a !== null ? { supported: true, status: a.status, code: a.code } : { supported: false, status: 'unavailable', code: null },
    relay: {
      enabled: s.relay,
      hop: server !== null,
      reservations: keeper?.reservations ?? []
    },
    holepunch: { enabled: s.holepunch, attempts: punch?.attempts ?? 0, successes: punch?.successes ?? 0 },
    public_ip: s.publicIp ?? confirmedIp,
    observed_ip: a?.observed_ips[0] ?? null
  }
  if (server !== null) {
    report.relay.serving = {
      reservations: server.reservations?.size ?? 0,
      max_reservations: s.relayMaxReservations,
      max_circuit_duration_s: s.relayMaxCircuitDurationS,
      max_circuit_bytes: s.relayMaxCircuitBytes,
      ...(traffic?.snapshot() ?? { circuits_total: 0, circuits_active: 0, reservations_total: 0, bytes_relayed: 0 })
    }
  }
  if (punch !== null && punch.recent.length > 0) report.holepunch.recent = punch.recent
  return report
}
