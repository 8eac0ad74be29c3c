/**
 * `--only floor`: what a request/reply costs below the service, on this machine, so
 * the cache.get figure can be read against it. Two processes each, on loopback:
 *
 * - raw TCP: one 200-byte write answered by the same bytes (no libp2p at all);
 * - bare js-libp2p: our node construction (TCP + Noise + Yamux, with the transport
 *   tunings of node/patches/transport-tuning.ts) and MCP++ framing, with a peer that
 *   answers every frame with a reply of a cache.get's size, without parsing it or
 *   touching a store.
 *
 * The difference between the second and cache.get is what the service and client
 * add; the second is as fast as cache.get could get without changing js-libp2p.
 */
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { pct, report } from './report.js'
import { cpuMs } from './proc-stats.js'

const PEER = fileURLToPath(new URL('./floor-peer.js', import.meta.url))
const ROUNDS = Number(process.env.BENCH_FLOOR_ROUNDS ?? 20_000)
const WARMUP = 2000

interface PeerReady { tcpPort: number, libp2pAddr: string }

export async function benchTransportFloor (): Promise<void> {
  const child = fork(PEER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  try {
    const ready = await new Promise<PeerReady>((resolve, reject) => {
      child.once('message', (m) => { resolve(m as PeerReady) })
      child.once('exit', (code) => { reject(new Error(`floor peer exited with ${String(code)}`)) })
    })
    const { rawTcpRoundTrips, libp2pRoundTrips } = await import('./floor-peer.js')
    const raw = await rawTcpRoundTrips(ready.tcpPort, WARMUP, ROUNDS)
    report('floor: raw TCP round trip (200 B), p50', `${pct(raw, 0.5).toFixed(3)} ms`, 'reported')
    // CPU per exchange on each side, warm-up included (it is 1/10 of the rounds): what a
    // request/reply costs a process below the service, against the service's CPU per task.
    const peer0 = cpuMs(child.pid!)
    const self0 = process.cpuUsage()
    const bare = await libp2pRoundTrips(ready.libp2pAddr, WARMUP, ROUNDS)
    const self = process.cpuUsage(self0)
    const peerUs = (cpuMs(child.pid!) - peer0) * 1000 / (WARMUP + ROUNDS)
    report('floor: bare js-libp2p + MCP++ framing round trip, p50', `${pct(bare, 0.5).toFixed(3)} ms`, 'reported')
    report('floor: CPU per bare exchange, answering peer / asking peer', `${peerUs.toFixed(0)} / ${((self.user + self.system) / (WARMUP + ROUNDS)).toFixed(0)} µs`, 'reported')
  } finally {
    child.kill()
  }
}
