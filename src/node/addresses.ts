/**
 * Which addresses a node tells others about. Peers must never be handed wildcard or
 * unreachable addresses (dials to them stall), and the announce file's preferred
 * address follows discovery.md §9.4.
 */
import { readFileSync } from 'node:fs'
import os from 'node:os'
import { BlockList, isIP } from 'node:net'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { Circuit } from '@multiformats/multiaddr-matcher'
import { isPrivateIp as libp2pIsPrivateIp } from '@libp2p/utils'

export function isWildcardHost (host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === ''
}

export function ipFamilyPrefix (ip: string): 'ip4' | 'ip6' {
  return isIP(ip) === 6 ? 'ip6' : 'ip4'
}

export function tcpMultiaddr (ip: string, port: number): string {
  return `/${ipFamilyPrefix(ip)}/${ip}/tcp/${port}`
}

/** IPv4 address of the interface carrying the default route, read locally (no packet sent). */
export function defaultRouteAddress (): string | null {
  let routes: string
  try {
    routes = readFileSync('/proc/net/route', 'utf8')
  } catch {
    return null
  }
  for (const line of routes.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/)
    if (cols.length > 2 && cols[1] === '00000000') {
      const iface = os.networkInterfaces()[cols[0]]
      const v4 = iface?.find((a) => a.family === 'IPv4' && !a.internal)
      if (v4 !== undefined) return v4.address
    }
  }
  return null
}

/** Interface address whose name matches the host name, when it resolves locally. */
function hostnameAddress (): string | null {
  try {
    const hosts = readFileSync('/etc/hosts', 'utf8')
    const name = os.hostname()
    for (const line of hosts.split('\n')) {
      const cols = line.replace(/#.*/, '').trim().split(/\s+/)
      if (cols.length > 1 && cols.slice(1).includes(name) && isIP(cols[0]) === 4 && !cols[0].startsWith('127.')) return cols[0]
    }
  } catch {}
  return null
}

/**
 * The IP that goes into the announce file's `multiaddr`: PUBLIC_IP when literal,
 * else a concrete listen host, else the default-route interface, the host name's
 * address, and finally loopback.
 */
export function preferredAnnounceIp (listenHost: string, publicIp: string | null): string {
  if (publicIp !== null) return publicIp
  if (!isWildcardHost(listenHost)) return listenHost
  return defaultRouteAddress() ?? hostnameAddress() ?? '127.0.0.1'
}

const TRAILING_PEER_ID = /\/p2p\/([^/]+)$/

/** The peer id an address ends in ('' if none). A relay's id inside a circuit address does not count. */
export function peerIdOf (addr: Multiaddr | string): string {
  return addr.toString().match(TRAILING_PEER_ID)?.[1] ?? ''
}

/** The address without its trailing `/p2p/<id>`. */
export function withoutPeerId (addr: Multiaddr | string): string {
  return addr.toString().replace(TRAILING_PEER_ID, '')
}

/**
 * The address ending in `/p2p/<peerId>`, unless it already names a peer. Only the end
 * counts: `…/p2p/<relay>/p2p-circuit` still needs the target's id.
 */
export function withPeerId (addr: Multiaddr | string, peerId: string): string {
  const s = addr.toString()
  return peerId === '' || TRAILING_PEER_ID.test(s) ? s : `${s}/p2p/${peerId}`
}

/** Drops unspecified and link-local addresses, which no peer can dial. */
export function isDialableAddress (addr: Multiaddr): boolean {
  const cls = classifyAddr(addr.toString())
  return cls !== 'unspecified' && cls !== 'link-local'
}

export type AddressClass = 'unspecified' | 'link-local' | 'loopback' | 'usable'

const unspecified = new BlockList()
unspecified.addAddress('0.0.0.0', 'ipv4')
unspecified.addAddress('::', 'ipv6')
const linkLocal = new BlockList()
linkLocal.addSubnet('169.254.0.0', 16, 'ipv4')
linkLocal.addSubnet('fe80::', 10, 'ipv6')
const loopback = new BlockList()
loopback.addSubnet('127.0.0.0', 8, 'ipv4')
loopback.addAddress('::1', 'ipv6')

/**
 * The one classifier of what an address can reach: unspecified and link-local addresses
 * are never dialable from another host, loopback only reaches this host. (@libp2p/utils'
 * isLinkLocal only knows fe80::/16, not all of fe80::/10.) Whether an IP is private is
 * libp2p's own judgement: `isPrivateIp` below.
 */
/** Classifies a bare IP literal; IPv4-mapped IPv6 is judged by its IPv4 part. */
export function classifyIp (ip: string): AddressClass {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)
  if (mapped !== null) return classifyIp(mapped[1])
  const family = isIP(ip)
  if (family === 0) return 'usable'
  const type = family === 4 ? 'ipv4' : 'ipv6'
  if (unspecified.check(ip, type)) return 'unspecified'
  if (linkLocal.check(ip, type)) return 'link-local'
  if (loopback.check(ip, type)) return 'loopback'
  return 'usable'
}

/** Classifies a multiaddr by its first (network) component; names (/dns…) count as usable. */
export function classifyAddr (addr: string): AddressClass {
  const m = /^\/ip[46]\/([^/]+)/.exec(addr)
  return m === null ? 'usable' : classifyIp(m[1])
}

/**
 * Private as libp2p judges it (@libp2p/utils): the address manager, identify and DCUtR
 * decide with that list, so classifying differently would make us probe or announce
 * addresses libp2p then silently drops. Anything that is not an IP counts as private.
 */
export function isPrivateIp (ip: string): boolean {
  return libp2pIsPrivateIp(ip) ?? true
}

/** A relayed (circuit) address. */
export function isCircuitAddr (ma: Multiaddr | string): boolean {
  return Circuit.matches(typeof ma === 'string' ? multiaddr(ma) : ma)
}

export function sortPreferred (addrs: string[], preferredIp: string): string[] {
  const rank = (a: string): number => {
    if (isCircuitAddr(a)) return 3
    if (a.startsWith(`/${ipFamilyPrefix(preferredIp)}/${preferredIp}/`)) return 0
    if (classifyAddr(a) === 'loopback') return 2
    return 1
  }
  return [...addrs].sort((a, b) => rank(a) - rank(b))
}

export function parseMultiaddr (s: string): Multiaddr {
  return multiaddr(s)
}
