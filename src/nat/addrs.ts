/**
 * Address facts the NAT services need: the IP and TCP port of a multiaddr, whether a
 * connection is relayed, and (from node/addresses.ts, which takes them from libp2p)
 * whether an address is a circuit and an IP private.
 */
import { isIP } from 'node:net'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Connection } from '@libp2p/interface'
import { classifyIp, isCircuitAddr, isPrivateIp } from '../node/addresses.js'

export { classifyIp, isCircuitAddr, isPrivateIp }

const CODE_IP4 = 4
const CODE_IP6 = 41
const CODE_TCP = 6

export interface IpPort { family: 4 | 6, ip: string, port: number | null }

/** The leading IP (and TCP port when it follows) of an address; null for DNS, memory, … */
export function ipPortOf (ma: Multiaddr | string): IpPort | null {
  const comps = (typeof ma === 'string' ? multiaddr(ma) : ma).getComponents()
  const first = comps[0]
  if (first === undefined || (first.code !== CODE_IP4 && first.code !== CODE_IP6) || first.value === undefined) return null
  const second = comps[1]
  const port = second?.code === CODE_TCP && second.value !== undefined ? Number(second.value) : null
  return { family: first.code === CODE_IP4 ? 4 : 6, ip: first.value, port }
}

/** Relayed: the connection carries limits or runs over a circuit address. The one test. */
export function isRelayedConnection (conn: Pick<Connection, 'limits' | 'remoteAddr'>): boolean {
  return conn.limits != null || isCircuitAddr(conn.remoteAddr)
}

/** A plain TCP address (no relay) whose IP libp2p considers public. */
export function isPublicTcpAddr (ma: Multiaddr | string): boolean {
  if (isCircuitAddr(ma)) return false
  const ipp = ipPortOf(ma)
  return ipp !== null && ipp.port !== null && !isPrivateIp(ipp.ip)
}

export function tcpAddr (ip: string, port: number): Multiaddr {
  return multiaddr(`/${isIP(ip) === 6 ? 'ip6' : 'ip4'}/${ip}/tcp/${port}`)
}
