/**
 * NAT figures for `npm run bench` (issue 4), in the network-namespace topology of
 * test/helpers/netns-nat.ts: relayed vs direct RPC latency (p50), the largest cache.set
 * through the relay, and the hole-punch success rate over 20 trials per NAT type.
 * Needs root and network namespaces; says so (and skips) otherwise.
 */
import { join } from 'node:path'
import { netnsSupport } from '../test/helpers/netns.js'
import type { Host } from '../test/helpers/netns.js'
import { createNatTopology, setNatKind } from '../test/helpers/netns-nat.js'
import { ROOT, runNode, sandbox } from '../test/helpers/procs.js'
import { P, PORT, localNat, nodeEnv, startRelay, startService, waitFor } from '../test/helpers/nat-fixture.js'
import type { Env } from '../test/helpers/procs.js'

const PROBE = join(ROOT, 'dist/bench/nat-probe.js')
const TRIALS = Number(process.env.BENCH_PUNCH_TRIALS ?? 20)

function report (name: string, value: string, target: string): void {
  process.stdout.write(`${name.padEnd(58)} ${value.padStart(14)}   (target ${target})\n`)
}

async function probe (host: Host, args: string[], extra: Env = {}): Promise<Record<string, unknown>> {
  const box = sandbox()
  try {
    const env = nodeEnv(box, { [`${P}ANNOUNCE_FILE`]: '0', [`${P}LISTEN_PORT`]: '0', TASKQUEUE_P2P_LOG_LEVEL: 'error', ...extra })
    const r = await runNode([PROBE, ...args], env, 300_000, host.ns)
    if (r.code !== 0 || r.json === undefined) throw new Error(`nat-probe ${args.join(' ')} failed (exit ${String(r.code)}): ${r.stdout.slice(-500)} ${r.stderr.slice(-1500)}`)
    return r.json
  } finally {
    box.cleanup()
  }
}

export async function benchNat (): Promise<void> {
  const support = netnsSupport()
  if (!support.ok) {
    report('NAT figures', 'skipped', support.reason)
    return
  }
  const topo = await createNatTopology()
  try {
    const relay = await startRelay(topo.relay)
    const stops: Array<() => Promise<unknown>> = [async () => { await relay.daemon.stop(); relay.box.cleanup() }]
    try {
      const boot = { [`${P}BOOTSTRAP_PEERS`]: relay.addr, [`${P}RELAY`]: '1', TASKQUEUE_P2P_LOG_LEVEL: 'error' }
      const wan = await startService(topo.wanHost, { ...boot, [`${P}LISTEN_PORT`]: String(PORT + 1), [`${P}CACHE_MAX_VALUE_BYTES`]: '983040' })
      stops.push(async () => { await wan.daemon.stop(); wan.box.cleanup() })
      const natted = await startService(topo.service, { ...boot, [`${P}HOLEPUNCH`]: '1' })
      stops.push(async () => { await natted.daemon.stop(); natted.box.cleanup() })
      await waitFor('reservations', 30_000, async () => {
        const [a, b] = await Promise.all([localNat(topo.service, natted.daemon.peerId), localNat(topo.wanHost, wan.daemon.peerId, PORT + 1)])
        return a.relay.reservations.length > 0 && b.relay.reservations.length > 0 ? true : null
      }, 1000)

      // Same service, same client host (behind router2): direct to the WAN service vs through the relay.
      const direct = `/ip4/${topo.wanHost.ip}/tcp/${PORT + 1}/p2p/${wan.daemon.peerId}`
      const relayed = `${relay.addr}/p2p-circuit/p2p/${wan.daemon.peerId}`
      const d = await probe(topo.client2, ['latency', direct, '1000'])
      const r = await probe(topo.client2, ['latency', relayed, '1000'])
      report('cache.get p50, direct (client behind NAT -> WAN service)', `${Number(d.p50_ms).toFixed(3)} ms`, 'reported')
      report('cache.get p50, through the relay', `${Number(r.p50_ms).toFixed(3)} ms`, 'reported')
      report('cache.get p99, direct / through the relay', `${Number(d.p99_ms).toFixed(2)}/${Number(r.p99_ms).toFixed(2)} ms`, 'reported')
      const big = await probe(topo.client2, ['bigset', relayed, '5'])
      const bigDirect = await probe(topo.client2, ['bigset', direct, '5'])
      report('cache.set of 960 KiB (1 MiB frame) through the relay, median', `${Number(big.median_ms).toFixed(1)} ms`, 'reported')
      report('  the same, direct', `${Number(bigDirect.median_ms).toFixed(1)} ms`, 'reported')

      // Hole punching: client2 (behind router2) to the NATed service (behind router1).
      const circuit = `${relay.addr}/p2p-circuit/p2p/${natted.daemon.peerId}`
      for (const kind of ['port-preserving', 'symmetric'] as const) {
        await setNatKind(topo.lab, topo.router1, kind)
        await setNatKind(topo.lab, topo.router2, kind)
        const p = await probe(topo.client2, ['punch', circuit, String(TRIALS)], { [`${P}HOLEPUNCH`]: '1' })
        report(`hole punch to direct, both NATs ${kind}`, `${String(p.direct)}/${String(p.trials)}`, kind === 'symmetric' ? '0 expected; relayed still works' : 'most')
      }
    } finally {
      for (const stop of stops.reverse()) await stop().catch(() => {})
    }
  } finally {
    await topo.lab.destroy()
  }
}
