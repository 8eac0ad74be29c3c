/**
 * mDNS on a real (virtual) LAN: every process runs in its own network namespace on one
 * bridge, with a multicast route on that LAN only, so nothing is ever multicast on the
 * host's interfaces. Real `taskqueue-p2p serve` and `p2p-rpc` processes, plus small
 * libp2p responders that are not TaskQueue services.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { NetLab, netnsSupport, requireNetns } from '../helpers/netns.js'
import type { Host } from '../helpers/netns.js'
import { NODE, ROOT, runRpc, sandbox, startDaemon } from '../helpers/procs.js'
import type { Daemon, Env, Sandbox } from '../helpers/procs.js'

type Obj = Record<string, any>
const P = 'IPFS_ACCELERATE_PY_TASK_P2P_'

/** A libp2p node that answers mDNS like any LAN peer; FIXTURE_TQ=1 also registers the TaskQueue protocol id. */
const RESPONDER = `
import { createTaskQueueNode } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/src/node/create-node.js')).href)}
import { mdnsParts } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/src/discovery/mdns.js')).href)}
const node = await createTaskQueueNode({ listen: [process.env.FIXTURE_LISTEN], parts: [mdnsParts({ role: 'service' })] })
if (process.env.FIXTURE_TQ === '1') await node.handle('/mcp+p2p/1.0.0', () => {})
console.log(JSON.stringify({ peerId: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) }))
process.on('SIGTERM', () => { void node.stop().finally(() => process.exit(0)) })
`

interface Responder { proc: ChildProcess, peerId: string, addrs: string[] }

async function startResponder (host: Host, listen: string, taskQueue: boolean): Promise<Responder> {
  const proc = host.spawn([NODE, '--input-type=module', '-e', RESPONDER], {
    PATH: process.env.PATH ?? '/usr/bin:/bin', FIXTURE_LISTEN: listen, FIXTURE_TQ: taskQueue ? '1' : '0'
  })
  let err = ''
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const info = await new Promise<{ peerId: string, addrs: string[] }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`responder not ready: ${err}`)), 20_000)
    proc.stdout?.once('data', (d: Buffer) => { clearTimeout(timer); resolve(JSON.parse(d.toString())) })
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`responder exited ${String(code)}: ${err}`)) })
  })
  return { proc, ...info }
}

/** The token of the LAN's services, configured on their clients too. */
const LAN_TOKEN = 'lan-token'

/** Only mDNS may find anything: no announce file, bootstrap, rendezvous or DHT. */
function mdnsOnlyEnv (box: Sandbox): Env {
  const env: Env = { ...box.env, [`${P}ANNOUNCE_FILE`]: '0', [`${P}MDNS`]: '1', [`${P}DHT`]: '0', [`${P}RENDEZVOUS`]: '0', [`${P}TOKEN`]: LAN_TOKEN }
  delete env[`${P}BOOTSTRAP_PEERS`]
  return env
}

function mdnsAttempts (trace: Obj): Obj[] {
  return (trace.attempts as Obj[]).filter((a) => a.method === 'mdns')
}

describe('mdns discovery on a namespace LAN', () => {
  let lab: NetLab | undefined
  let svcHost: Host, cliHost: Host, plainHost: Host, loopHost: Host
  const boxes: Sandbox[] = []
  let svc: Daemon | undefined
  let plain: Responder
  let loop: Responder

  before(async () => {
    if (!netnsSupport().ok) return
    lab = new NetLab('mdns-acceptance')
    const br = await lab.addBridge('lan')
    svcHost = await lab.addHost('svc', { bridge: br, ip: '10.77.1.2/24', multicast: true })
    cliHost = await lab.addHost('cli', { bridge: br, ip: '10.77.1.3/24', multicast: true })
    plainHost = await lab.addHost('plain', { bridge: br, ip: '10.77.1.4/24', multicast: true })
    loopHost = await lab.addHost('loop', { bridge: br, ip: '10.77.1.5/24', multicast: true })
    plain = await startResponder(plainHost, '/ip4/0.0.0.0/tcp/4001', false)
    // Would be a TaskQueue peer if dialled, but it only listens on loopback.
    loop = await startResponder(loopHost, '/ip4/127.0.0.1/tcp/4001', true)
  })

  after(async () => {
    await svc?.stop()
    await lab?.destroy()
    for (const b of boxes) b.cleanup()
  })

  const box = (extra: Env = {}): Sandbox => {
    const b = sandbox(extra)
    boxes.push(b)
    return b
  }

  it('a non-TaskQueue responder is recorded not_taskqueue; loopback-only addresses are never dialled', async (t) => {
    if (!requireNetns(t)) return
    const r = await runRpc(['discover', '--pretty'], mdnsOnlyEnv(box()), 60_000, cliHost.ns)
    const trace = r.json as Obj
    assert.ok(trace !== undefined, `no JSON trace: ${r.stdout}${r.stderr}`)
    assert.equal(trace.ok, false)
    const m = mdnsAttempts(trace)
    const nt = m.find((a) => a.error === 'not_taskqueue')
    assert.ok(nt !== undefined, `no not_taskqueue record: ${JSON.stringify(m)}`)
    assert.equal(nt.peer_id, plain.peerId)
    assert.match(nt.multiaddr, new RegExp(`^/ip4/10\\.77\\.1\\.4/tcp/4001/p2p/${plain.peerId}$`))
    const lo = m.find((a) => a.peer_id === loop.peerId)
    assert.ok(lo !== undefined, 'the loopback-only responder was heard')
    assert.equal(lo.error, 'no_usable_address')
    assert.ok(m.every((a) => !String(a.multiaddr).includes('/127.')), 'no loopback dial')
    assert.equal(m[m.length - 1].error, 'no_taskqueue_peers', `responders found, none serves TaskQueue: ${JSON.stringify(m)}`)
    assert.ok(m.every((a) => a.error !== 'timeout'), 'not reported as timeout: responders were found')
  })

  it('finds `serve` with MDNS=1: mdns ok with its peer id and LAN address, then status works', async (t) => {
    if (!requireNetns(t)) return
    // Beyond loopback a service needs a token (its generated one stays on its host).
    const sb = box({ [`${P}LISTEN_HOST`]: '0.0.0.0', [`${P}MDNS`]: '1', [`${P}TOKEN`]: LAN_TOKEN })
    svc = await startDaemon('serve', [], sb.env, 20_000, svcHost.ns)
    const env = mdnsOnlyEnv(box())
    const r = await runRpc(['discover', '--pretty'], env, 60_000, cliHost.ns)
    const trace = r.json as Obj
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`)
    assert.equal(trace.ok, true)
    assert.equal(trace.method, 'mdns')
    const win = mdnsAttempts(trace).find((a) => a.ok === true) as Obj
    assert.equal(win.peer_id, svc.peerId)
    assert.match(win.multiaddr, new RegExp(`^/ip4/10\\.77\\.1\\.2/tcp/\\d+/p2p/${svc.peerId}$`))
    assert.equal(win.error, '')
    assert.equal(trace.result.peer_id, svc.peerId)
    for (const rec of (trace.attempts as Obj[]).filter((a) => a.method !== 'mdns')) {
      assert.equal(rec.ok, false, `only mdns may find the service: ${JSON.stringify(rec)}`)
      assert.match(rec.error, /^(disabled|not_explicitly_configured)$/)
    }

    const status = await runRpc(['status'], env, 60_000, cliHost.ns)
    assert.equal(status.code, 0, status.stdout + status.stderr)
    assert.equal(status.json?.ok, true)
    assert.equal(status.json?.peer_id, svc.peerId)

    // Restarted on a new port (same identity): mDNS finds the new address, not the old one.
    const oldPort = win.multiaddr.match(/\/tcp\/(\d+)\//)[1] as string
    await svc.stop()
    svc = await startDaemon('serve', [], sb.env, 20_000, svcHost.ns)
    const again = await runRpc(['discover'], mdnsOnlyEnv(box()), 60_000, cliHost.ns)
    assert.equal(again.code, 0, `${again.stdout}${again.stderr}`)
    const moved = mdnsAttempts(again.json as Obj).find((a) => a.ok === true) as Obj
    assert.equal(moved.peer_id, svc.peerId)
    assert.doesNotMatch(moved.multiaddr, new RegExp(`/tcp/${oldPort}/`))
  })

  it('mdns_unavailable when UDP 5353 cannot be bound', async (t) => {
    if (!requireNetns(t)) return
    // An exclusive (no SO_REUSEADDR) socket on 5353 makes every later bind fail.
    const blocker = cliHost.spawn([NODE, '-e', "require('dgram').createSocket({ type: 'udp4', reuseAddr: false }).bind(5353, () => console.log('bound'))"],
      { PATH: process.env.PATH ?? '' })
    try {
      await new Promise((resolve) => blocker.stdout?.once('data', resolve))
      const r = await runRpc(['discover', '--pretty'], mdnsOnlyEnv(box()), 60_000, cliHost.ns)
      const m = mdnsAttempts(r.json as Obj)
      assert.equal(m.length, 1, JSON.stringify(m))
      assert.match(m[0].error, /^mdns_unavailable: EADDRINUSE/)
    } finally {
      blocker.kill('SIGKILL')
    }
  })
})
