/**
 * A Linux network-namespace lab for tests that need a real LAN (mDNS multicast, NAT).
 * Every bridge and host lives in a namespace this lab created, and veth pairs are
 * created directly inside those namespaces, so nothing ever touches the host's own
 * interfaces or routes. Names carry a pid-based prefix so parallel test files (separate
 * processes) never collide, and namespaces left behind by a killed process are reaped
 * by the next lab that starts.
 *
 * Extension points for NAT routers: `addNamespace` + `attach` (any number of interfaces
 * per namespace), `exec`/`iptables`/`sysctl` inside a namespace.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import type { ChildProcess, StdioOptions } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import type { TestContext } from 'node:test'

export interface NetnsSupport { ok: boolean, reason: string }

export interface ExecResult { code: number | null, stdout: string, stderr: string }

/** Root prefix of every namespace this helper creates; `tq-<pid36>-<lab>-<name>`. */
const NS_PREFIX = 'tq-'
const SEARCH_PATH = ['/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/local/bin']
const INSTALL_TIMEOUT_MS = 180_000

function findBinary (name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(':').filter((d) => d !== ''), ...SEARCH_PATH]
  for (const dir of dirs) {
    const p = `${dir}/${name}`
    if (existsSync(p)) return p
  }
  return null
}

function isRoot (): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0
}

let support: NetnsSupport | undefined

/**
 * Whether this process can build namespaces. When root and `ip`/`iptables` are missing,
 * installs them once (apt-get, bounded) because CI images are often minimal.
 */
export function netnsSupport (): NetnsSupport {
  if (support !== undefined) return support
  support = probeSupport()
  return support
}

function probeSupport (): NetnsSupport {
  if (process.platform !== 'linux') return { ok: false, reason: `network namespaces need Linux (platform ${process.platform})` }
  if (!isRoot()) return { ok: false, reason: 'network namespaces need root (uid 0)' }
  if (findBinary('ip') === null || findBinary('iptables') === null) {
    const apt = findBinary('apt-get')
    if (apt === null) return { ok: false, reason: '`ip`/`iptables` missing and apt-get unavailable' }
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    const install = (): boolean => spawnSync(apt, ['install', '-y', '--no-install-recommends', 'iproute2', 'iptables'],
      { env, stdio: 'ignore', timeout: INSTALL_TIMEOUT_MS }).status === 0
    // A fresh image has no package lists, so a first failure is retried after an update.
    if (!install()) {
      spawnSync(apt, ['update'], { env, stdio: 'ignore', timeout: INSTALL_TIMEOUT_MS })
      install()
    }
    if (findBinary('ip') === null) return { ok: false, reason: '`ip` (iproute2) missing and apt-get install failed' }
    if (findBinary('iptables') === null) return { ok: false, reason: '`iptables` missing and apt-get install failed' }
  }
  const ip = findBinary('ip') as string
  const probe = `${NS_PREFIX}${process.pid.toString(36)}-probe`
  const add = spawnSync(ip, ['netns', 'add', probe], { encoding: 'utf8', timeout: 10_000 })
  if (add.status !== 0) return { ok: false, reason: `\`ip netns add\` failed: ${(add.stderr ?? '').trim() || String(add.error ?? add.status)}` }
  const up = spawnSync(ip, ['-n', probe, 'link', 'set', 'lo', 'up'], { encoding: 'utf8', timeout: 10_000 })
  spawnSync(ip, ['netns', 'del', probe], { timeout: 10_000 })
  if (up.status !== 0) return { ok: false, reason: `cannot configure a namespace: ${(up.stderr ?? '').trim()}` }
  return { ok: true, reason: '' }
}

/**
 * Gate for a netns test. Unsupported environments get a loud banner because a silently
 * skipped network test looks like a passing one; in CI it is a failure.
 */
export function requireNetns (t: TestContext): boolean {
  const s = netnsSupport()
  if (s.ok) return true
  const line = `NETNS TEST NOT RUN: ${s.reason}`
  const bar = '!'.repeat(Math.min(100, line.length + 8))
  process.stderr.write(`\n${bar}\n!!! ${line} !!!\n${bar}\n\n`)
  if (process.env.CI === 'true') throw new Error(`${line} (CI=true: netns tests are mandatory)`)
  t.skip(s.reason)
  return false
}

export interface Iface {
  /** Interface name inside its namespace (eth0, eth1, …). */
  name: string
  /** Address without prefix length. */
  ip: string
  cidr: string
  bridge: string
}

export interface Host {
  ns: string
  /** Address of the first interface, without prefix length. */
  ip: string
  iface: string
  /** All interfaces, in attach order (routers have several). */
  ifaces: Iface[]
  /** Runs `ip netns exec <ns> ...argv`; the process is killed by `destroy()`. */
  spawn: (argv: string[], env: Record<string, string>, stdio?: StdioOptions) => ChildProcess
  exec: (argv: string[], timeoutMs?: number) => Promise<ExecResult>
}

export interface AttachOptions {
  bridge: string
  /** CIDR, e.g. 10.77.0.2/24. */
  ip: string
  /** Default interface name: eth<N>. */
  iface?: string
  gateway?: string
  /** Route 224.0.0.0/4 on this interface (mDNS needs a route for multicast sends). */
  multicast?: boolean
}

export interface HostOptions extends Omit<AttachOptions, 'iface'> {}

const liveLabs = new Set<NetLab>()
let labCounter = 0
let handlersInstalled = false

function installExitHandlers (): void {
  if (handlersInstalled) return
  handlersInstalled = true
  process.on('exit', () => { for (const lab of liveLabs) lab.destroySync() })
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = (): void => {
      for (const lab of liveLabs) lab.destroySync()
      // Our listener replaced the default "die" behaviour; restore it when nobody else cares.
      process.removeListener(sig, onSignal)
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig)
    }
    process.on(sig, onSignal)
  }
}

function pidAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Removes namespaces of test processes that died without cleaning up (SIGKILL, crash). */
function reapStale (ip: string): void {
  let names: string[]
  try {
    names = readdirSync('/run/netns')
  } catch {
    return
  }
  for (const name of names) {
    const m = /^tq-([0-9a-z]+)-/.exec(name)
    if (m === null) continue
    const pid = parseInt(m[1], 36)
    if (pid !== process.pid && !pidAlive(pid)) spawnSync(ip, ['netns', 'del', name], { timeout: 10_000 })
  }
}

export class NetLab {
  readonly label: string
  /** `tq-<pid36>-<n>`; every namespace name starts with it. */
  readonly prefix: string
  private readonly ipBin: string
  private readonly namespaces: string[] = []
  private readonly bridges = new Map<string, { ns: string, ports: number }>()
  private readonly hosts = new Map<string, Host>()
  private readonly children = new Set<ChildProcess>()
  private readonly ifaceCount = new Map<string, number>()
  private destroyed = false

  constructor (label: string) {
    const ip = findBinary('ip')
    if (ip === null) throw new Error('NetLab: `ip` not found (call requireNetns first)')
    this.ipBin = ip
    this.label = label
    this.prefix = `${NS_PREFIX}${process.pid.toString(36)}-${(labCounter++).toString(36)}`
    reapStale(ip)
    installExitHandlers()
    liveLabs.add(this)
  }

  private nsName (name: string): string {
    if (!/^[A-Za-z0-9_.]{1,24}$/.test(name)) throw new Error(`NetLab: bad name ${JSON.stringify(name)}`)
    return `${this.prefix}-${name}`
  }

  /** Runs `ip ...args` (host namespace), throwing with stderr on failure. */
  private async ip (args: string[]): Promise<void> {
    const r = await run(this.ipBin, args, 15_000)
    if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed (${String(r.code)}): ${r.stderr.trim()}`)
  }

  /** Runs a command inside a namespace; throws when `check` and it fails. */
  async exec (ns: string, argv: string[], timeoutMs = 30_000): Promise<ExecResult> {
    return await run(this.ipBin, ['netns', 'exec', ns, ...argv], timeoutMs)
  }

  async execOk (ns: string, argv: string[], timeoutMs = 30_000): Promise<string> {
    const r = await this.exec(ns, argv, timeoutMs)
    if (r.code !== 0) throw new Error(`[${ns}] ${argv.join(' ')} failed (${String(r.code)}): ${r.stderr.trim()}`)
    return r.stdout
  }

  async iptables (ns: string, args: string[]): Promise<string> {
    return await this.execOk(ns, ['iptables', '-w', '5', ...args])
  }

  async sysctl (ns: string, key: string, value: string): Promise<void> {
    await this.execOk(ns, ['sysctl', '-q', '-w', `${key}=${value}`])
  }

  /** A fresh namespace with `lo` up. Returns its full name. */
  async addNamespace (name: string): Promise<string> {
    if (this.destroyed) throw new Error('NetLab: destroyed')
    const ns = this.nsName(name)
    await this.ip(['netns', 'add', ns])
    this.namespaces.push(ns)
    await this.ip(['-n', ns, 'link', 'set', 'lo', 'up'])
    return ns
  }

  /** A learning bridge `br0` in its own namespace; returns the id `addHost`/`attach` take. */
  async addBridge (name: string): Promise<string> {
    const ns = await this.addNamespace(`b${name}`)
    await this.ip(['-n', ns, 'link', 'add', 'br0', 'type', 'bridge'])
    // Snooping would drop multicast until an IGMP querier exists; plain flooding is what a dumb LAN switch does.
    await this.ip(['-n', ns, 'link', 'set', 'br0', 'type', 'bridge', 'mcast_snooping', '0'])
    await this.ip(['-n', ns, 'link', 'set', 'br0', 'up'])
    this.bridges.set(ns, { ns, ports: 0 })
    this.bridges.set(name, this.bridges.get(ns) as { ns: string, ports: number })
    return ns
  }

  /**
   * Plugs namespace `ns` into a bridge with a new veth and address. Both veth ends are
   * created inside namespaces, never in the host's.
   */
  async attach (ns: string, opts: AttachOptions): Promise<Iface> {
    const bridge = this.bridges.get(opts.bridge)
    if (bridge === undefined) throw new Error(`NetLab: unknown bridge ${opts.bridge}`)
    const host = [...this.hosts.values()].find((h) => h.ns === ns)
    const n = this.ifaceCount.get(ns) ?? 0
    this.ifaceCount.set(ns, n + 1)
    const iface = opts.iface ?? `eth${n}`
    const port = `p${bridge.ports++}`
    await this.ip(['-n', ns, 'link', 'add', iface, 'type', 'veth', 'peer', 'name', port, 'netns', bridge.ns])
    await this.ip(['-n', bridge.ns, 'link', 'set', port, 'master', 'br0'])
    await this.ip(['-n', bridge.ns, 'link', 'set', port, 'up'])
    await this.ip(['-n', ns, 'addr', 'add', opts.ip, 'dev', iface])
    await this.ip(['-n', ns, 'link', 'set', iface, 'up'])
    if (opts.gateway !== undefined) await this.ip(['-n', ns, 'route', 'add', 'default', 'via', opts.gateway, 'dev', iface])
    if (opts.multicast === true) await this.ip(['-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', iface])
    const rec: Iface = { name: iface, ip: opts.ip.split('/')[0], cidr: opts.ip, bridge: bridge.ns }
    host?.ifaces.push(rec)
    return rec
  }

  /** A namespace with one interface on `opts.bridge`. */
  async addHost (name: string, opts: HostOptions): Promise<Host> {
    const ns = await this.addNamespace(name)
    const ifaces: Iface[] = []
    const host: Host = {
      ns,
      ip: '',
      iface: '',
      ifaces,
      spawn: (argv, env, stdio = ['ignore', 'pipe', 'pipe']) => this.spawnIn(ns, argv, env, stdio),
      exec: async (argv, timeoutMs) => await this.exec(ns, argv, timeoutMs)
    }
    this.hosts.set(name, host)
    const first = await this.attach(ns, { ...opts, iface: 'eth0' })
    host.ip = first.ip
    host.iface = first.name
    return host
  }

  /** A host with no interface yet (routers: attach one interface per bridge). */
  async addBareHost (name: string): Promise<Host> {
    const ns = await this.addNamespace(name)
    const host: Host = {
      ns,
      ip: '',
      iface: '',
      ifaces: [],
      spawn: (argv, env, stdio = ['ignore', 'pipe', 'pipe']) => this.spawnIn(ns, argv, env, stdio),
      exec: async (argv, timeoutMs) => await this.exec(ns, argv, timeoutMs)
    }
    this.hosts.set(name, host)
    return host
  }

  host (name: string): Host | undefined {
    return this.hosts.get(name)
  }

  /**
   * A TCP server in `host` that answers every connection with the peer address it saw
   * (`<ip>:<port>\n`), so NAT tests can check translation. Resolves once listening.
   */
  async tcpEcho (host: Host, port: number, bind = '0.0.0.0'): Promise<ChildProcess> {
    const code = `require('net').createServer((s) => { s.end(s.remoteAddress.replace(/^::ffff:/, '') + ':' + s.remotePort + '\\n') })` +
      `.listen(${port}, ${JSON.stringify(bind)}, () => console.log('listening'))`
    const child = host.spawn([process.execPath, '-e', code], { PATH: process.env.PATH ?? '' })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('tcpEcho: not listening after 10 s')), 10_000)
      child.stdout?.on('data', (d: Buffer) => { if (d.toString().includes('listening')) { clearTimeout(timer); resolve() } })
      child.on('exit', (c) => { clearTimeout(timer); reject(new Error(`tcpEcho exited ${String(c)}`)) })
    })
    return child
  }

  /** Connects from `ns` to ip:port; returns the server's first line (see tcpEcho) or null on failure. */
  async tcpConnect (ns: string, ip: string, port: number, timeoutMs = 3000): Promise<string | null> {
    const code = `const s = require('net').connect(${port}, ${JSON.stringify(ip)}); let d = '';` +
      `s.setTimeout(${timeoutMs}, () => process.exit(2)); s.on('error', () => process.exit(1));` +
      `s.on('data', (c) => { d += c }); s.on('end', () => { process.stdout.write(d); process.exit(0) })`
    const r = await this.exec(ns, [process.execPath, '-e', code], timeoutMs + 5000)
    return r.code === 0 ? r.stdout.trim() : null
  }

  // addRouter(name, { lan: AttachOptions, wan: AttachOptions, nat: 'masquerade' | ... }) belongs
  // to the NAT work: addBareHost + attach per side + sysctl ip_forward + iptables.

  spawnIn (ns: string, argv: string[], env: Record<string, string>, stdio: StdioOptions = ['ignore', 'pipe', 'pipe']): ChildProcess {
    if (this.destroyed) throw new Error('NetLab: destroyed')
    // `ip netns exec` execs the command, so the pid is the command's own and kill() reaches it.
    const child = spawn(this.ipBin, ['netns', 'exec', ns, ...argv], { env, stdio })
    this.children.add(child)
    child.on('exit', () => this.children.delete(child))
    return child
  }

  /** Names of the namespaces this lab still owns. */
  listNamespaces (): string[] {
    return [...this.namespaces]
  }

  /** Kills spawned processes, then deletes every namespace (veths die with them). Idempotent. */
  async destroy (): Promise<void> {
    const waits = [...this.children].map(async (c) => {
      if (c.exitCode !== null || c.signalCode !== null) return
      const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()))
      c.kill('SIGKILL')
      await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 3000))])
    })
    await Promise.all(waits)
    this.children.clear()
    while (this.namespaces.length > 0) {
      const ns = this.namespaces.pop() as string
      await run(this.ipBin, ['netns', 'del', ns], 15_000)
    }
    this.destroyed = true
    liveLabs.delete(this)
  }

  /** Synchronous variant for process 'exit' / signal handlers. */
  destroySync (): void {
    for (const c of this.children) {
      try { c.kill('SIGKILL') } catch {}
    }
    this.children.clear()
    while (this.namespaces.length > 0) {
      const ns = this.namespaces.pop() as string
      try { execFileSync(this.ipBin, ['netns', 'del', ns], { stdio: 'ignore', timeout: 10_000 }) } catch {}
    }
    this.destroyed = true
    liveLabs.delete(this)
  }
}

/** Namespaces currently present on the machine that start with `prefix`. */
export function existingNamespaces (prefix: string): string[] {
  try {
    return readdirSync('/run/netns').filter((n) => n.startsWith(prefix))
  } catch {
    return []
  }
}

async function run (cmd: string, args: string[], timeoutMs: number): Promise<ExecResult> {
  return await new Promise<ExecResult>((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', (err) => {
      clearTimeout(timer)
      resolve({ code: null, stdout, stderr: stderr + String(err) })
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}
