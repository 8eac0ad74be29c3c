/**
 * NAT routers and the WAN topology of the NAT acceptance tests, on top of NetLab.
 *
 *                      WAN bridge 203.0.114.0/24 (public-looking, see below)
 *      ┌──────────────┬──────────────┬───────────────────┬───────────────────┐
 *   relay .2      wanhost .3     router1 .11          router2 .12
 *                                 │ MASQUERADE          │ MASQUERADE
 *                             LAN1 10.1.0.0/24      LAN2 10.2.0.0/24
 *                             service 10.1.0.2      client2 10.2.0.2
 *
 * Why 203.0.114.0/24: libp2p classifies 203.0.113.0/24 (TEST-NET-3) and every other
 * documentation range as private, and then neither announces, AutoNAT-probes nor
 * hole-punches such addresses; the WAN side must look public to exercise real NAT
 * behaviour. The range only ever exists inside namespaces this lab created, which have
 * no route to the host's network, so no packet can leave for the real 203.0.114.0/24.
 *
 * Router flavours (RFC 4787 terms):
 * - `port-preserving`: plain MASQUERADE. Linux keeps the source port when it is free, so
 *   the mapping is predictable from the inside (endpoint-independent in practice).
 * - `symmetric`: MASQUERADE --random-fully: every new flow gets a random external port.
 * Both drop unsolicited inbound traffic on the WAN side, as home routers do (Linux
 * would otherwise answer with RST, which real NATs almost never send).
 */
import type { TestContext } from 'node:test'
import { NetLab, requireNetns } from './netns.js'
import type { Host } from './netns.js'

export type NatKind = 'port-preserving' | 'symmetric'

export const WAN_PREFIX = '203.0.114'

export interface Router {
  host: Host
  wanIp: string
  lanIp: string
  kind: NatKind
}

export interface RouterOptions {
  wanBridge: string
  /** CIDR on the WAN bridge. */
  wanCidr: string
  lanBridge: string
  /** CIDR on the LAN bridge; LAN hosts use its address as gateway. */
  lanCidr: string
  kind: NatKind
}

async function natRules (lab: NetLab, router: Host, kind: NatKind): Promise<void> {
  await lab.iptables(router.ns, ['-t', 'nat', '-F', 'POSTROUTING'])
  await lab.iptables(router.ns, ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'eth0', '-j', 'MASQUERADE',
    ...(kind === 'symmetric' ? ['--random-fully'] : [])])
}

/** A namespace routing between a LAN bridge and the WAN bridge, with source NAT. */
export async function addRouter (lab: NetLab, name: string, opts: RouterOptions): Promise<Router> {
  const host = await lab.addBareHost(name)
  const wan = await lab.attach(host.ns, { bridge: opts.wanBridge, ip: opts.wanCidr, iface: 'eth0' })
  const lan = await lab.attach(host.ns, { bridge: opts.lanBridge, ip: opts.lanCidr, iface: 'eth1' })
  host.ip = wan.ip
  host.iface = wan.name
  await lab.sysctl(host.ns, 'net.ipv4.ip_forward', '1')
  await natRules(lab, host, opts.kind)
  // Unsolicited inbound: dropped, never forwarded into the LAN, never answered.
  await lab.iptables(host.ns, ['-A', 'INPUT', '-i', 'eth0', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'])
  await lab.iptables(host.ns, ['-A', 'INPUT', '-i', 'eth0', '-j', 'DROP'])
  await lab.iptables(host.ns, ['-A', 'FORWARD', '-i', 'eth0', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'])
  await lab.iptables(host.ns, ['-A', 'FORWARD', '-i', 'eth0', '-j', 'DROP'])
  return { host, wanIp: wan.ip, lanIp: lan.ip, kind: opts.kind }
}

/** Switches a router's NAT flavour; flows already mapped keep their mapping. */
export async function setNatKind (lab: NetLab, router: Router, kind: NatKind): Promise<void> {
  await natRules(lab, router.host, kind)
  router.kind = kind
}

/** Forwards a WAN TCP port to a LAN host (the "forward TCP port 9710" fix). */
export async function forwardPort (lab: NetLab, router: Router, port: number, lanHostIp: string): Promise<void> {
  await lab.iptables(router.host.ns, ['-t', 'nat', '-A', 'PREROUTING', '-i', 'eth0', '-p', 'tcp', '--dport', String(port), '-j', 'DNAT', '--to-destination', `${lanHostIp}:${port}`])
  await lab.iptables(router.host.ns, ['-I', 'FORWARD', '1', '-i', 'eth0', '-p', 'tcp', '-d', lanHostIp, '--dport', String(port), '-j', 'ACCEPT'])
}

export interface NatTopology {
  lab: NetLab
  wanBridge: string
  /** Coordination node (relay) on the WAN. */
  relay: Host
  /** A WAN host: the public client, and the public service of the AutoNAT check. */
  wanHost: Host
  router1: Router
  /** The service behind router1. */
  service: Host
  router2: Router
  /** The second client, behind router2. */
  client2: Host
}

export interface TopologyOptions {
  serviceNat?: NatKind
  clientNat?: NatKind
}

/** Builds the whole topology; the caller owns `lab.destroy()`. Needs netns (root). */
export async function createNatTopology (opts: TopologyOptions = {}): Promise<NatTopology> {
  const lab = new NetLab('nat')
  try {
    const wanBridge = await lab.addBridge('wan')
    await lab.addBridge('lan1')
    await lab.addBridge('lan2')
    const relay = await lab.addHost('relay', { bridge: 'wan', ip: `${WAN_PREFIX}.2/24` })
    const wanHost = await lab.addHost('wanhost', { bridge: 'wan', ip: `${WAN_PREFIX}.3/24` })
    const router1 = await addRouter(lab, 'router1', { wanBridge: 'wan', wanCidr: `${WAN_PREFIX}.11/24`, lanBridge: 'lan1', lanCidr: '10.1.0.1/24', kind: opts.serviceNat ?? 'port-preserving' })
    const router2 = await addRouter(lab, 'router2', { wanBridge: 'wan', wanCidr: `${WAN_PREFIX}.12/24`, lanBridge: 'lan2', lanCidr: '10.2.0.1/24', kind: opts.clientNat ?? 'port-preserving' })
    const service = await lab.addHost('service', { bridge: 'lan1', ip: '10.1.0.2/24', gateway: '10.1.0.1' })
    const client2 = await lab.addHost('client2', { bridge: 'lan2', ip: '10.2.0.2/24', gateway: '10.2.0.1' })
    return { lab, wanBridge, relay, wanHost, router1, service, router2, client2 }
  } catch (err) {
    await lab.destroy()
    throw err
  }
}

/**
 * Builds the whole topology, registering its removal with `t.after`. Returns null (and
 * the test is marked skipped with a loud banner, or fails under CI) without netns.
 */
export async function buildNatTopology (t: TestContext, opts: TopologyOptions = {}): Promise<NatTopology | null> {
  if (!requireNetns(t)) return null
  const topo = await createNatTopology(opts)
  t.after(async () => { await topo.lab.destroy() })
  return topo
}
