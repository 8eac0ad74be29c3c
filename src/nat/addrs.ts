/**
 * Address facts the NAT services need: the IP and TCP port of a multiaddr, whether it
 * is relayed, and whether an IP is private. The private ranges mirror libp2p's own
 * classification (@libp2p/utils isPrivate), because the address manager, identify and
 * DCUtR decide with that list: if we classified differently, we would probe or announce
 * addresses libp2p then silently drops.
 */
import { isIP } from 'node:net'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'

const CODE_IP4 = 4
const CODE_IP6 = 41
const CODE_TCP = 6
const CODE_P2P_CIRCUIT = 290

/** IPv4 ranges libp2p treats as private (loopback, RFC 1918, CGNAT, TEST-NETs, …). */
const PRIVATE_V4: Array<[string, number]> = [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16],
  ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.31.196.0', 24], ['192.52.193.0', 24],
  ['192.88.99.0', 24], ['192.168.0.0', 16], ['192.175.48.0', 24], ['198.18.0.0', 15], ['198.51.100.0', 24],
  ['203.0.113.0', 24], ['240.0.0.0', 4], ['255.255.255.255', 32]
]

function v4ToInt (ip: string): number {
  return ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0)
}

export function isPrivateIp (ip: string): boolean {
  const family = isIP(ip)
  if (family === 4) {
    const n = v4ToInt(ip)
    return PRIVATE_V4.some(([base, bits]) => Math.floor(n / 2 ** (32 - bits)) === Math.floor(v4ToInt(base) / 2 ** (32 - bits)))
  }
  if (family === 6) {
    const lower = ip.toLowerCase()
    const mapped = lower.match(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/)
    if (mapped !== null) return isPrivateIp(mapped[1])
    return lower === '::' || lower === '::1' || /^f[cd]/.test(lower) || /^fe[89ab]/.test(lower)
  }
  return true
}

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

export function isCircuitAddr (ma: Multiaddr | string): boolean {
  const m = typeof ma === 'string' ? multiaddr(ma) : ma
  return m.getComponents().some((c) => c.code === CODE_P2P_CIRCUIT)
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

/** Adds the jitter the spec asks for: a delay in [base/2, base). */
export function jitter (baseMs: number): number {
  return baseMs * (0.5 + Math.random() / 2)
}
