/**
 * Private network (SWARM_KEY, libp2p pnet) across network namespaces on one LAN: a
 * coordination node (rendezvous point + DHT server), a service and a client share one
 * key and find each other through rendezvous and the DHT; a fourth node with another
 * key can neither connect to any of them nor discover anything.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { NetLab, netnsSupport, requireNetns } from '../helpers/netns.js'
import type { Host } from '../helpers/netns.js'
import { runRpc, sandbox, startDaemon } from '../helpers/procs.js'
import type { CliResult, Daemon, Env, Sandbox } from '../helpers/procs.js'

type Obj = Record<string, any>
const P = 'IPFS_ACCELERATE_PY_TASK_P2P_'
const PORT = 4001
const KEY_A = 'a1'.repeat(32)
const KEY_B = 'b2'.repeat(32)
/** The token is shared by all four: what keeps the fourth out is the swarm key alone. */
const TOKEN = 'pnet-fleet-token'

describe('private network (SWARM_KEY) on a namespace LAN', () => {
  let lab: NetLab | undefined
  let relayHost: Host, svcHost: Host, cliHost: Host, outHost: Host
  const boxes: Sandbox[] = []
  const daemons: Daemon[] = []
  let relayAddr = ''
  let svc: Daemon

  const env = (key: string, extra: Env = {}): Env => {
    const box = sandbox()
    boxes.push(box)
    return {
      ...box.env,
      [`${P}LISTEN_HOST`]: '0.0.0.0',
      [`${P}LISTEN_PORT`]: String(PORT),
      [`${P}SWARM_KEY`]: key,
      [`${P}TOKEN`]: TOKEN,
      [`${P}ANNOUNCE_FILE`]: '0',
      [`${P}MDNS`]: '0',
      [`${P}DHT`]: '1',
      [`${P}RENDEZVOUS`]: '1',
      ...extra
    }
  }
  const rpc = async (host: Host, key: string, args: string[], extra: Env = {}): Promise<CliResult> =>
    await runRpc(args, env(key, { [`${P}LISTEN_PORT`]: '0', [`${P}BOOTSTRAP_PEERS`]: relayAddr, [`${P}BOOTSTRAP_DIAL`]: '0', ...extra }), 60_000, host.ns)

  before(async () => {
    if (!netnsSupport().ok) return
    lab = new NetLab('pnet-acceptance')
    const br = await lab.addBridge('lan')
    relayHost = await lab.addHost('relay', { bridge: br, ip: '10.77.3.2/24' })
    svcHost = await lab.addHost('svc', { bridge: br, ip: '10.77.3.3/24' })
    cliHost = await lab.addHost('cli', { bridge: br, ip: '10.77.3.4/24' })
    outHost = await lab.addHost('out', { bridge: br, ip: '10.77.3.5/24' })
    const relay = await startDaemon('relay', [], env(KEY_A), 20_000, relayHost.ns)
    daemons.push(relay)
    relayAddr = `/ip4/${relayHost.ip}/tcp/${PORT}/p2p/${relay.peerId}`
    svc = await startDaemon('serve', ['--enable-cache'], env(KEY_A, { [`${P}BOOTSTRAP_PEERS`]: relayAddr }), 20_000, svcHost.ns)
    daemons.push(svc)
  })

  after(async () => {
    for (const d of daemons.reverse()) await d.stop()
    await lab?.destroy()
    for (const b of boxes) b.cleanup()
  })

  it('the three with one key discover each other through rendezvous and the DHT', async (t) => {
    if (!requireNetns(t)) return
    let trace: Obj | undefined
    for (let i = 0; i < 30; i++) {
      trace = (await rpc(cliHost, KEY_A, ['discover', '--all', '--timeout', '15'])).json as Obj | undefined
      const methods = new Set(((trace?.peers ?? []) as Obj[]).filter((p) => p.peer_id === svc.peerId).map((p) => p.method))
      if (methods.has('rendezvous') && methods.has('dht')) break
      await new Promise((resolve) => setTimeout(resolve, 1000))
    }
    const found = ((trace?.peers ?? []) as Obj[]).filter((p) => p.peer_id === svc.peerId).map((p) => p.method).sort()
    assert.deepEqual([...new Set(found)], ['dht', 'rendezvous'], JSON.stringify(trace))
    const status = await rpc(cliHost, KEY_A, ['status'])
    assert.equal(status.code, 0, status.stdout + status.stderr)
    assert.equal((status.json as Obj | undefined)?.security?.private_network, true)
  })

  it('a node with another key cannot connect to any of them, nor discover anything', async (t) => {
    if (!requireNetns(t)) return
    const svcAddr = `/ip4/${svcHost.ip}/tcp/${PORT}/p2p/${svc.peerId}`
    for (const target of [svcAddr, relayAddr]) {
      const r = await rpc(outHost, KEY_B, ['status', '--multiaddr', target, '--timeout', '5'])
      assert.equal(r.code, 3, `${target}: ${r.stdout}${r.stderr}`)
    }
    const d = await rpc(outHost, KEY_B, ['discover', '--all', '--timeout', '10'])
    assert.equal(d.code, 3, d.stdout + d.stderr)
    assert.deepEqual((d.json?.peers ?? []) as Obj[], [])
    // Without any key it is the same: the public network does not reach a private one.
    const none = await rpc(outHost, '', ['status', '--multiaddr', svcAddr, '--timeout', '5'], { [`${P}SWARM_KEY`]: '' })
    assert.equal(none.code, 3, none.stdout + none.stderr)
    // And the key holders still work afterwards.
    assert.equal((await rpc(cliHost, KEY_A, ['status', '--multiaddr', svcAddr])).code, 0)
  })
})
