/**
 * Issue 3's figures: time from a client's first call to a successful status, per
 * discovery mechanism with all others switched off, median of 10, process start
 * excluded. Loopback for all but mDNS, which needs a multicast LAN of namespaces.
 */
import { join } from 'node:path'
import { NetLab, netnsSupport } from '../test/helpers/netns.js'
import { ROOT, runNode, sandbox, startDaemon } from '../test/helpers/procs.js'
import type { Daemon, Env, Sandbox } from '../test/helpers/procs.js'
import { startDhtSwarm } from '../test/helpers/dht-swarm.js'
import { median, report } from './report.js'

const P = 'IPFS_ACCELERATE_PY_TASK_P2P_'
const RUNS = 10
const CLIENT = join(ROOT, 'dist/bench/discovery-client.js')
const MECHANISMS = ['announce-file', 'bootstrap', 'rendezvous', 'dht'] as const

function onlyEnv (box: Sandbox, only: string, extra: Env): Env {
  return {
    ...box.env,
    [`${P}ANNOUNCE_FILE`]: only === 'announce-file' ? box.announceFile : '0',
    [`${P}BOOTSTRAP_DIAL`]: only === 'bootstrap' ? '1' : '0',
    [`${P}RENDEZVOUS`]: only === 'rendezvous' ? '1' : '0',
    [`${P}DHT`]: only === 'dht' ? '1' : '0',
    [`${P}MDNS`]: only === 'mdns' ? '1' : '0',
    TASKQUEUE_P2P_LOG_LEVEL: 'error',
    ...extra
  }
}

async function measure (name: string, target: string, env: Env, netns?: string): Promise<void> {
  const r = await runNode([CLIENT, String(RUNS)], env, 120_000, netns)
  let parsed: { ms: number[], methods: string[] }
  try {
    parsed = JSON.parse(r.stdout) as { ms: number[], methods: string[] }
  } catch {
    report(`discovery to first status: ${name}`, 'failed', target)
    process.stderr.write(r.stderr.slice(-2000))
    return
  }
  const wrong = parsed.methods.filter((m) => m !== name)
  report(`discovery to first status: ${name}, median of ${RUNS}`, `${median(parsed.ms).toFixed(0)} ms`, target)
  if (wrong.length > 0) process.stdout.write(`  (${wrong.length} runs did not win by ${name}: ${wrong[0]})\n`)
}

async function benchLoopback (): Promise<void> {
  const box = sandbox({ TASKQUEUE_P2P_LOG_LEVEL: 'error' })
  const daemons: Daemon[] = []
  try {
    const relay = await startDaemon('relay', ['--listen-host', '127.0.0.1', '--listen-port', '0'],
      { ...box.env, [`${P}DHT`]: '1', [`${P}RENDEZVOUS`]: '1', [`${P}IDENTITY_FILE`]: join(box.dir, 'relay.key') })
    daemons.push(relay)
    // 20 DHT nodes in all: the coordination node, the service and 18 more.
    const swarm = await startDhtSwarm(18, relay.multiaddr)
    try {
      const svc = await startDaemon('serve', [], { ...box.env, [`${P}BOOTSTRAP_PEERS`]: relay.multiaddr, [`${P}DHT`]: '1', [`${P}RENDEZVOUS`]: '1' })
      daemons.push(svc)
      // Let the service register, provide and finish its own DHT walk before the clock
      // starts: right after start-up it is busy with ~20 handshakes.
      await new Promise((resolve) => setTimeout(resolve, 6000))
      const targets: Record<string, string> = { 'announce-file': '<= 30 ms', bootstrap: '<= 50 ms', rendezvous: '<= 100 ms', dht: '<= 300 ms (20-node swarm)' }
      for (const m of MECHANISMS) {
        const cli = sandbox()
        const peers = m === 'bootstrap' ? svc.multiaddr : relay.multiaddr
        await measure(m, targets[m], onlyEnv(cli, m, { [`${P}ANNOUNCE_FILE`]: m === 'announce-file' ? box.announceFile : '0', [`${P}BOOTSTRAP_PEERS`]: peers }))
        cli.cleanup()
      }
    } finally {
      await swarm.stop()
    }
  } finally {
    for (const d of daemons.reverse()) await d.stop()
    box.cleanup()
  }
}

async function benchMdns (): Promise<void> {
  const support = netnsSupport()
  if (!support.ok) {
    report('discovery to first status: mdns', 'not run', `<= 200 ms; needs network namespaces: ${support.reason}`)
    return
  }
  const lab = new NetLab('bench-mdns')
  const box = sandbox({ TASKQUEUE_P2P_LOG_LEVEL: 'error' })
  let svc: Daemon | null = null
  try {
    const br = await lab.addBridge('lan')
    const svcHost = await lab.addHost('svc', { bridge: br, ip: '10.78.1.2/24', multicast: true })
    const cliHost = await lab.addHost('cli', { bridge: br, ip: '10.78.1.3/24', multicast: true })
    svc = await startDaemon('serve', [], { ...box.env, [`${P}LISTEN_HOST`]: '0.0.0.0', [`${P}MDNS`]: '1' }, 20_000, svcHost.ns)
    const cli = sandbox()
    await measure('mdns', '<= 200 ms', onlyEnv(cli, 'mdns', {}), cliHost.ns)
    cli.cleanup()
  } finally {
    await svc?.stop()
    await lab.destroy()
    box.cleanup()
  }
}

export async function benchDiscovery (): Promise<void> {
  await benchLoopback()
  await benchMdns()
}
