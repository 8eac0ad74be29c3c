import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existingNamespaces, NetLab, requireNetns } from '../helpers/netns.js'

describe('netns lab', () => {
  it('two hosts on a bridge reach each other over ICMP and TCP; destroy() leaves nothing', async (t) => {
    if (!requireNetns(t)) return
    const lab = new NetLab('netns-unit')
    t.after(async () => { await lab.destroy() })
    const br = await lab.addBridge('lan')
    const a = await lab.addHost('a', { bridge: br, ip: '10.77.0.2/24', multicast: true })
    const b = await lab.addHost('b', { bridge: br, ip: '10.77.0.3/24', multicast: true })
    assert.equal(a.ip, '10.77.0.2')
    assert.equal(a.iface, 'eth0')
    assert.ok(existingNamespaces(lab.prefix).length >= 3, 'bridge + 2 hosts exist')

    const lo = await lab.execOk(a.ns, ['ip', '-o', 'link', 'show', 'lo'])
    assert.match(lo, /UP/, 'lo is up')
    const routes = await lab.execOk(a.ns, ['ip', 'route'])
    assert.match(routes, /224\.0\.0\.0\/4 dev eth0/)

    const ping = await lab.exec(a.ns, ['ping', '-c', '1', '-W', '2', b.ip])
    if (ping.code !== 0 && /not found|No such file/.test(ping.stderr)) t.diagnostic('ping binary missing; TCP check only')
    else assert.equal(ping.code, 0, `ping failed: ${ping.stdout}${ping.stderr}`)

    // TCP (ping may be missing from minimal images; node never is).
    const server = await lab.tcpEcho(b, 7777)
    assert.equal((await lab.tcpConnect(a.ns, b.ip, 7777))?.split(':')[0], a.ip, 'b sees a\'s own address')
    assert.equal(await lab.tcpConnect(a.ns, '10.77.0.99', 7777, 1000), null, 'absent host is unreachable')

    await lab.destroy()
    assert.equal(server.exitCode !== null || server.signalCode !== null, true, 'spawned process killed')
    assert.deepEqual(existingNamespaces(lab.prefix), [], 'no namespace left behind')
    await lab.destroy() // idempotent
  })

  it('hosts with several interfaces and iptables inside a namespace (router building blocks)', async (t) => {
    if (!requireNetns(t)) return
    const lab = new NetLab('netns-router')
    t.after(async () => { await lab.destroy() })
    const lan = await lab.addBridge('lan')
    const wan = await lab.addBridge('wan')
    const r = await lab.addBareHost('r')
    await lab.attach(r.ns, { bridge: lan, ip: '10.78.0.1/24' })
    await lab.attach(r.ns, { bridge: wan, ip: '10.79.0.1/24' })
    assert.deepEqual(r.ifaces.map((i) => i.name), ['eth0', 'eth1'])
    await lab.sysctl(r.ns, 'net.ipv4.ip_forward', '1')
    await lab.iptables(r.ns, ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'eth1', '-j', 'MASQUERADE'])
    const rules = await lab.iptables(r.ns, ['-t', 'nat', '-S', 'POSTROUTING'])
    assert.match(rules, /MASQUERADE/)
    const inside = await lab.addHost('in', { bridge: lan, ip: '10.78.0.2/24', gateway: '10.78.0.1' })
    const outside = await lab.addHost('out', { bridge: wan, ip: '10.79.0.2/24' })
    await lab.tcpEcho(outside, 7000)
    assert.equal((await lab.tcpConnect(inside.ns, outside.ip, 7000))?.split(':')[0], '10.79.0.1', 'masqueraded behind the router')
    await lab.destroy()
    assert.deepEqual(existingNamespaces(lab.prefix), [])
  })
})
