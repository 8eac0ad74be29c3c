import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  ConfigError, EnvReader, loadLogSettings, loadSettings, parseBool, parseInteger, parseNumber, parseProtocol,
  redactSettings, resolveSettings
} from '../../src/config/index.js'
import type { Env, LoadOptions, Settings, SettingsOverrides } from '../../src/config/index.js'

const P = 'IPFS_ACCELERATE_PY_TASK_P2P_'
const D = 'IPFS_DATASETS_PY_TASK_P2P_'
const HOME = '/home/tester'
const BASE: Env = { HOME }
const OPTS: LoadOptions = { cwd: '/work/dir', hostname: 'host-1' }

function load (env: Env, overrides: SettingsOverrides = {}, opts: LoadOptions = {}): { s: Settings, warnings: string[] } {
  const warnings: string[] = []
  const s = loadSettings({ ...BASE, ...env }, overrides, m => warnings.push(m), { ...OPTS, ...opts })
  return { s, warnings }
}

function refuse (env: Env, overrides: SettingsOverrides = {}): ConfigError {
  try {
    load(env, overrides)
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`)
    assert.equal(err.code, 'invalid_config')
    assert.ok(!err.message.includes('\n'), 'one line')
    return err
  }
  assert.fail(`expected ConfigError for ${JSON.stringify(env)}`)
}

function accepts<K extends keyof Settings> (name: string, key: K, cases: Array<[string, Settings[K]]>): void {
  for (const [text, want] of cases) {
    assert.deepEqual(load({ [name]: text }).s[key], want, `${name}=${JSON.stringify(text)}`)
  }
}

function rejects (name: string, texts: string[]): void {
  for (const text of texts) {
    const err = refuse({ [name]: text })
    assert.equal(err.variable, name, `${name}=${JSON.stringify(text)}`)
    assert.ok(err.message.startsWith(`config error: ${name}=${JSON.stringify(text.trim())} `), err.message)
  }
}

describe('config defaults', () => {
  it('match config.md §3', () => {
    const { s, warnings } = load({})
    const cache = `${HOME}/.cache/ipfs_accelerate_py`
    assert.deepEqual(warnings, [])
    assert.equal(s.role, 'serve')
    assert.equal(s.listenHost, '0.0.0.0')
    assert.equal(s.listenPort, 9710)
    assert.equal(s.publicIp, null)
    assert.equal(s.queuePath, `${cache}/task_queue.sqlite3`)
    assert.equal(s.identityFile, `${cache}/identity.key`)
    assert.equal(s.token, null)
    assert.equal(s.authMode, '')
    assert.deepEqual(s.protocol, ['mcp'])
    assert.equal(s.allowLegacyFallback, false)
    assert.equal(s.enableLegacyProtocol, false)
    assert.equal(s.session, '')
    assert.equal(s.announceFile, `${cache}/task_p2p_announce.json`)
    assert.deepEqual(s.bootstrapPeers, [])
    assert.equal(s.bootstrapDial, true)
    assert.equal(s.bootstrapMaxAttempts, 4)
    assert.equal(s.dnsaddrResolve, true)
    assert.equal(s.rendezvous, true)
    assert.equal(s.rendezvousNs, 'ipfs-accelerate-task-queue')
    assert.deepEqual(s.rendezvousPoints, [])
    assert.equal(s.rendezvousMaxAttempts, 6)
    assert.equal(s.dht, true)
    assert.equal(s.dhtProtocol, '/ipfs/kad/1.0.0')
    assert.equal(s.dhtProvideIntervalS, 1800)
    assert.equal(s.dhtMaxProviderAttempts, 8)
    assert.equal(s.mdns, true)
    assert.equal(s.mdnsAllowLoopback, false)
    assert.equal(s.mdnsMaxAttemptsPerPoll, 4)
    assert.equal(s.discoveryTimeoutS, 10)
    assert.deepEqual(s.discoveryStepTimeouts, { 'announce-file': 3, bootstrap: 4, rendezvous: 5, dht: 8, mdns: 5 })
    assert.equal(s.explicitDiscoveryFallback, false)
    assert.equal(s.debugDial, false)
    assert.equal(s.relay, false)
    assert.equal(s.relayHop, false)
    assert.equal(s.holepunch, false)
    assert.equal(s.autonat, true)
    assert.deepEqual(s.relayPeers, [])
    assert.equal(s.relayMaxReservations, 128)
    assert.equal(s.relayMaxCircuitDurationS, 1800)
    assert.equal(s.relayMaxCircuitBytes, 268435456)
    assert.equal(s.leaseS, 300)
    assert.equal(s.waitMaxS, 300)
    assert.equal(s.deterministic, true)
    assert.equal(s.peerTimeoutS, 300)
    assert.equal(s.schedulerStealAfterS, 30)
    assert.equal(s.enableTools, false)
    assert.equal(s.enableCache, false)
    assert.equal(s.cacheDir, null)
    assert.equal(s.cacheMaxEntries, 100000)
    assert.equal(s.cacheMaxBytes, 268435456)
    assert.equal(s.cacheMaxValueBytes, 524288)
    assert.equal(s.cacheSweepIntervalS, 60)
    assert.equal(s.mcpMaxFrameBytes, 1048576)
    assert.equal(s.mcpMaxFrames, 128)
    assert.equal(s.mcpRateCapacity, 128)
    assert.equal(s.mcpRateRefillPerSec, 128)
    assert.equal(s.mcpClientMaxOutboundFrameBytes, 1048576)
    assert.equal(s.mcpClientMaxInboundFrameBytes, 16777216)
    assert.deepEqual([s.rpcRetries, s.submitRetries, s.waitRetries], [2, 2, 2])
    assert.equal(s.rpcRetryBaseMs, 50)
    assert.equal(s.retryDelayMaxMs, 5000)
    assert.equal(s.rpcDialTimeoutS, 8)
    assert.equal(s.workerId, 'host-1')
    assert.equal(s.workerTaskTypes, null)
  })

  it('are frozen', () => {
    const { s } = load({})
    assert.ok(Object.isFrozen(s))
    assert.ok(Object.isFrozen(s.protocol))
    assert.ok(Object.isFrozen(s.discoveryStepTimeouts))
  })

  it('use an absolute XDG_CACHE_HOME and ignore a relative one', () => {
    assert.equal(load({ XDG_CACHE_HOME: '/xdg' }).s.queuePath, '/xdg/ipfs_accelerate_py/task_queue.sqlite3')
    assert.equal(load({ XDG_CACHE_HOME: 'rel' }).s.queuePath, `${HOME}/.cache/ipfs_accelerate_py/task_queue.sqlite3`)
    assert.equal(load({ XDG_CACHE_HOME: '  ' }).s.queuePath, `${HOME}/.cache/ipfs_accelerate_py/task_queue.sqlite3`)
  })

  it('put IDENTITY_FILE beside the queue, or at the relay path for relay', () => {
    assert.equal(load({}, {}, { role: 'worker' }).s.identityFile, `${HOME}/.cache/ipfs_accelerate_py/identity.key`)
    assert.equal(load({ IPFS_ACCELERATE_PY_TASK_QUEUE_PATH: '/q/tasks.db' }).s.identityFile, '/q/identity.key')
    assert.equal(load({}, { queuePath: 'sub/q.db' }).s.identityFile, '/work/dir/sub/identity.key')
    assert.equal(load({ XDG_CACHE_HOME: '/xdg' }, {}, { role: 'relay' }).s.identityFile,
      '/xdg/ipfs_accelerate_py/relay_identity.key')
    assert.equal(load({ [`${P}IDENTITY_FILE`]: '~/id.key' }, {}, { role: 'relay' }).s.identityFile, `${HOME}/id.key`)
  })
})

describe('config kinds', () => {
  it('boolean: the ten words, case-insensitive and trimmed', () => {
    for (const w of ['1', 'true', 'YES', 'y', 'On', ' true ']) assert.equal(parseBool(w), true, w)
    for (const w of ['0', 'FALSE', 'no', 'N', 'off', '\toff\n']) assert.equal(parseBool(w), false, w)
    accepts(`${P}MDNS`, 'mdns', [['off', false], ['OFF', false], ['on', true], ['   ', true], ['', true]])
    accepts(`${P}ENABLE_TOOLS`, 'enableTools', [['on', true], ['y', true], ['no', false]])
    rejects(`${P}MDNS`, ['maybe', '2', '-1', 'enable', 'truee', 't'])
  })

  it('integer: sign and decimal digits within range', () => {
    assert.equal(parseInteger('+5'), 5)
    assert.equal(parseInteger('007'), 7)
    assert.equal(Object.is(parseInteger('-0'), 0), true)
    for (const bad of ['1.0', '0x10', '1e3', '1_000', '5s', '', ' ', '--1', '9007199254740993']) {
      assert.equal(parseInteger(bad), undefined, bad)
    }
    accepts(`${P}LISTEN_PORT`, 'listenPort', [['0', 0], ['65535', 65535], [' +80 ', 80], ['-0', 0]])
    rejects(`${P}LISTEN_PORT`, ['65536', '-1', '80.0', '0x50', '8e1', 'http', '1_000', '80 tcp'])
    accepts(`${P}CACHE_MAX_VALUE_BYTES`, 'cacheMaxValueBytes', [['1', 1], ['983040', 983040]])
    rejects(`${P}CACHE_MAX_VALUE_BYTES`, ['0', '983041'])
    accepts(`${P}CACHE_MAX_BYTES`, 'cacheMaxBytes', [['1048576', 1048576], ['68719476736', 68719476736]])
    rejects(`${P}CACHE_MAX_BYTES`, ['1048575', '68719476737'])
    rejects(`${P}BOOTSTRAP_MAX_ATTEMPTS`, ['0', '65'])
    rejects(`${P}MDNS_MAX_ATTEMPTS_PER_POLL`, ['0', '33'])
    rejects(`${P}RPC_RETRIES`, ['-1', '11'])
    rejects('IPFS_ACCELERATE_PY_MCP_P2P_MAX_FRAMES', ['1', '100001'])
    rejects('IPFS_ACCELERATE_PY_MCP_P2P_MAX_FRAME_BYTES', ['1023', '67108865'])
    rejects(`${P}RELAY_MAX_RESERVATIONS`, ['0', '10001'])
    accepts(`${P}RELAY_MAX_CIRCUIT_BYTES`, 'relayMaxCircuitBytes', [['0', 0]])
  })

  it('number: decimal, fraction, exponent; no hex, inf, nan, units or _', () => {
    for (const [t, n] of [['0.5', 0.5], ['.5', 0.5], ['5.', 5], ['1e1', 10], ['+2.5E+1', 25], [' 3 ', 3]] as const) {
      assert.equal(parseNumber(t), n, t)
    }
    for (const bad of ['0x1', 'inf', 'Infinity', '-inf', 'nan', 'NaN', '1_0', '5s', '1e999', '.', 'e5', '', '1,5']) {
      assert.equal(parseNumber(bad), undefined, bad)
    }
    accepts(`${P}DISCOVERY_TIMEOUT_S`, 'discoveryTimeoutS', [['0.5', 0.5], ['600', 600], ['2.5e1', 25]])
    rejects(`${P}DISCOVERY_TIMEOUT_S`, ['0.49', '601', '10s', 'inf', 'nan', '0x10', '1_0'])
    accepts(`${P}DHT_PROVIDE_INTERVAL_S`, 'dhtProvideIntervalS', [['0', 0], ['60', 60], ['86400', 86400]])
    rejects(`${P}DHT_PROVIDE_INTERVAL_S`, ['30', '59.9', '86401', '-1'])
    rejects(`${P}LEASE_S`, ['9', '3601'])
    rejects(`${P}PEER_TIMEOUT_S`, ['4', '86401'])
    accepts('IPFS_ACCELERATE_PY_MCP_P2P_RATE_REFILL_PER_SEC', 'mcpRateRefillPerSec', [['0.1', 0.1]])
    rejects('IPFS_ACCELERATE_PY_MCP_P2P_RATE_REFILL_PER_SEC', ['0', '-1'])
    rejects('IPFS_ACCELERATE_PY_MCP_P2P_RATE_CAPACITY', ['0.5'])
  })

  it('list: comma-separated, trimmed, empty items dropped', () => {
    accepts('IPFS_ACCELERATE_PY_TASK_WORKER_TASK_TYPES', 'workerTaskTypes',
      [[' a, ,b ,', ['a', 'b']], ['text.echo', ['text.echo']], [',', null]])
  })

  it('address list: multiaddrs incl. dns4/dns6/dnsaddr; false words mean empty', () => {
    const ma = '/ip4/10.0.0.1/tcp/9710/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf'
    accepts(`${P}BOOTSTRAP_PEERS`, 'bootstrapPeers', [
      [`${ma} , /dns4/relay.example/tcp/4001,,/dns6/h.example/tcp/1,/dnsaddr/bootstrap.libp2p.io`,
        [ma, '/dns4/relay.example/tcp/4001', '/dns6/h.example/tcp/1', '/dnsaddr/bootstrap.libp2p.io']],
      [`${ma},${ma}`, [ma]],
      ...['0', 'false', 'NO', 'n', 'off'].map(w => [w, []] as [string, readonly string[]])
    ])
    rejects(`${P}BOOTSTRAP_PEERS`, ['1', 'true', 'foo', '/ip4/999.0.0.1/tcp/1', '/ip4/1.2.3.4/tcp/1/p2p/QmBad', '/'])
    rejects(`${P}RELAY_PEERS`, ['not-an-addr'])
    rejects(`${P}RENDEZVOUS_POINTS`, ['/ip4/1.2.3.4/tcp/70000'])
    const err = refuse({ [`${P}BOOTSTRAP_PEERS`]: `${ma},/ip4/1.2.3.4/tcp/1/p2p/QmBad` })
    assert.match(err.message, /QmBad/)
  })

  it('path: ~ expanded, relative resolved against cwd', () => {
    const q = 'IPFS_ACCELERATE_PY_TASK_QUEUE_PATH'
    accepts(q, 'queuePath', [['~/q.db', `${HOME}/q.db`], ['q.db', '/work/dir/q.db'], ['../x/q.db', '/work/x/q.db'],
      ['/abs/q.db', '/abs/q.db'], ['  /abs//q.db ', '/abs/q.db']])
    accepts(`${P}CACHE_DIR`, 'cacheDir', [['~', HOME], ['c', '/work/dir/c']])
  })

  it('ANNOUNCE_FILE: false words disable it, anything else is a path', () => {
    for (const w of ['0', 'false', 'No', 'n', 'OFF']) assert.equal(load({ [`${P}ANNOUNCE_FILE`]: w }).s.announceFile, null, w)
    assert.equal(load({ [`${P}ANNOUNCE_FILE`]: 'a.json' }).s.announceFile, '/work/dir/a.json')
    assert.equal(load({ [`${P}ANNOUNCE_FILE`]: '1' }).s.announceFile, '/work/dir/1')
    assert.equal(load({ [`${P}ANNOUNCE_FILE`]: '/a.json' }, { announceFile: null }).s.announceFile, null)
    assert.equal(load({}, { announceFile: 'rel.json' }).s.announceFile, '/work/dir/rel.json')
  })

  it('IP kinds: LISTEN_HOST and PUBLIC_IP', () => {
    accepts(`${P}LISTEN_HOST`, 'listenHost', [['::', '::'], ['127.0.0.1', '127.0.0.1']])
    rejects(`${P}LISTEN_HOST`, ['localhost', '1.2.3', '0.0.0.0:9710'])
    accepts(`${P}PUBLIC_IP`, 'publicIp', [['auto', null], ['AUTO', null], ['203.0.113.7', '203.0.113.7'], ['2001:db8::1', '2001:db8::1']])
    rejects(`${P}PUBLIC_IP`, ['example.com', 'yes', '203.0.113'])
  })

  it('namespaces, protocol ids and step timeouts', () => {
    accepts(`${P}RENDEZVOUS_NS`, 'rendezvousNs', [['x'.repeat(255), 'x'.repeat(255)], ['my-ns', 'my-ns']])
    rejects(`${P}RENDEZVOUS_NS`, ['x'.repeat(256), 'é'.repeat(128)])
    accepts(`${P}DHT_PROTOCOL`, 'dhtProtocol', [['/my/kad/1.0.0', '/my/kad/1.0.0']])
    rejects(`${P}DHT_PROTOCOL`, ['kad', '/a b'])
  })
})

describe('config names and precedence', () => {
  it('falls back to the DATASETS alias for every variable', () => {
    const { s, warnings } = load({
      [`${D}LISTEN_PORT`]: '1111',
      IPFS_DATASETS_PY_TASK_QUEUE_PATH: '/d/q.db',
      IPFS_DATASETS_PY_MCP_P2P_MAX_FRAMES: '64',
      IPFS_DATASETS_PY_TASK_WORKER_ID: 'w-d',
      [`${D}RELAY_MAX_RESERVATIONS`]: '5'
    })
    assert.equal(s.listenPort, 1111)
    assert.equal(s.queuePath, '/d/q.db')
    assert.equal(s.mcpMaxFrames, 64)
    assert.equal(s.mcpRateCapacity, 64)
    assert.equal(s.workerId, 'w-d')
    assert.equal(s.relayMaxReservations, 5)
    assert.deepEqual(warnings, [])
  })

  it('an empty ACCELERATE value falls through to DATASETS', () => {
    assert.equal(load({ [`${P}LISTEN_PORT`]: '  ', [`${D}LISTEN_PORT`]: '2222' }).s.listenPort, 2222)
  })

  it('ACCELERATE wins a conflict with one warning naming both', () => {
    const { s, warnings } = load({ [`${P}LISTEN_PORT`]: '1', [`${D}LISTEN_PORT`]: '2' })
    assert.equal(s.listenPort, 1)
    assert.equal(warnings.length, 1)
    assert.match(warnings[0], new RegExp(`${P}LISTEN_PORT`))
    assert.match(warnings[0], new RegExp(`${D}LISTEN_PORT`))
    assert.deepEqual(load({ [`${P}LISTEN_PORT`]: '1', [`${D}LISTEN_PORT`]: ' 1 ' }).warnings, [])
  })

  it('an invalid DATASETS value is reported under its own name', () => {
    const err = refuse({ [`${D}MDNS`]: 'maybe' })
    assert.equal(err.variable, `${D}MDNS`)
  })

  it('orders flag > ACCELERATE > DATASETS > default and records the source', () => {
    const env = { ...BASE, [`${P}LISTEN_PORT`]: '1', [`${D}LISTEN_PORT`]: '2' }
    const run = (e: Env, o: SettingsOverrides): { port: number, src: string | undefined } => {
      const r = resolveSettings(e, o, () => {}, OPTS)
      return { port: r.settings.listenPort, src: r.sources[`${P}LISTEN_PORT`] }
    }
    assert.deepEqual(run(env, { listenPort: 0 }), { port: 0, src: 'flag --listen-port' })
    assert.deepEqual(run(env, {}), { port: 1, src: `env ${P}LISTEN_PORT` })
    assert.deepEqual(run({ ...BASE, [`${D}LISTEN_PORT`]: '2' }, {}), { port: 2, src: `env ${D}LISTEN_PORT` })
    assert.deepEqual(run(BASE, { listenPort: undefined }), { port: 9710, src: 'default' })
  })

  it('a flag shadows an invalid environment value, and is itself range-checked', () => {
    assert.equal(load({ [`${P}LISTEN_PORT`]: 'bad' }, { listenPort: 5 }).s.listenPort, 5)
    const err = refuse({}, { listenPort: 70000 })
    assert.equal(err.variable, '--listen-port')
    assert.equal(err.message, 'config error: --listen-port="70000" is not an integer in 0..65535')
    assert.equal(refuse({}, { leaseS: 1 }).variable, '--lease-s')
    assert.deepEqual(load({}, { enableTools: true, queuePath: '/x' }).s.enableTools, true)
  })

  it('formats errors as one line naming the variable, value and accepted spellings', () => {
    const err = refuse({ [`${P}MDNS`]: 'maybe' })
    assert.equal(err.message,
      'config error: IPFS_ACCELERATE_PY_TASK_P2P_MDNS="maybe" is not a boolean (use 1/true/yes/y/on or 0/false/no/n/off)')
    assert.equal(err.value, 'maybe')
    assert.equal(err.name, 'ConfigError')
    assert.ok(err instanceof Error)
    assert.equal(refuse({ [`${P}LISTEN_PORT`]: 'a\nb' }).message.split('\n').length, 1)
  })
})

describe('config PROTOCOL', () => {
  const cases: Array<[string, string[]]> = [
    ['mcp', ['mcp']], ['MCP++', ['mcp']], ['mcp+p2p', ['mcp']], ['mcpp', ['mcp']], ['mcpp2p', ['mcp']],
    ['legacy', ['legacy']], ['ndjson', ['legacy']], ['v1', ['legacy']], ['task-queue', ['legacy']],
    ['task_queue', ['legacy']], ['TaskQueue', ['legacy']],
    ['auto', ['mcp', 'legacy']], ['mcp-then-legacy', ['mcp', 'legacy']], ['mcp_then_legacy', ['mcp', 'legacy']],
    ['mcp+legacy', ['mcp', 'legacy']], ['mcp/legacy', ['mcp', 'legacy']],
    ['legacy,mcp', ['legacy', 'mcp']], ['legacy|mcp;mcp  legacy', ['legacy', 'mcp']], [' ndjson ; auto ', ['legacy', 'mcp']]
  ]
  it('parses words, separators and order', () => {
    for (const [text, want] of cases) {
      assert.deepEqual(parseProtocol(text), { ok: true, value: want }, text)
      assert.deepEqual(load({ [`${P}PROTOCOL`]: text }).s.protocol, want, text)
    }
  })

  it('rejects any other token', () => {
    rejects(`${P}PROTOCOL`, ['grpc', 'mcp,grpc', 'mcp-legacy', 'mcp.legacy', ',', 'mcp+'])
    assert.match(refuse({ [`${P}PROTOCOL`]: 'mcp,grpc' }).message, /"grpc"/)
  })

  it('ALLOW_LEGACY_FALLBACK appends legacy once', () => {
    assert.deepEqual(load({ [`${P}ALLOW_LEGACY_FALLBACK`]: '1' }).s.protocol, ['mcp', 'legacy'])
    assert.deepEqual(load({ [`${P}ALLOW_LEGACY_FALLBACK`]: 'on', [`${P}PROTOCOL`]: 'legacy,mcp' }).s.protocol,
      ['legacy', 'mcp'])
  })

  it('ENABLE_LEGACY_PROTOCOL is derived from PROTOCOL when unset', () => {
    assert.equal(load({ [`${P}PROTOCOL`]: 'auto' }).s.enableLegacyProtocol, true)
    assert.equal(load({ [`${P}PROTOCOL`]: 'mcp' }).s.enableLegacyProtocol, false)
    assert.equal(load({ [`${P}ALLOW_LEGACY_FALLBACK`]: '1' }).s.enableLegacyProtocol, false)
    assert.equal(load({ [`${P}PROTOCOL`]: 'auto', [`${P}ENABLE_LEGACY_PROTOCOL`]: '0' }).s.enableLegacyProtocol, false)
    assert.equal(load({ [`${P}ENABLE_LEGACY_PROTOCOL`]: 'yes' }).s.enableLegacyProtocol, true)
    assert.equal(load({}, { enableLegacyProtocol: true }).s.enableLegacyProtocol, true)
  })
})

describe('config DISCOVERY_STEP_TIMEOUTS', () => {
  const name = `${P}DISCOVERY_STEP_TIMEOUTS`
  it('merges any subset over the defaults', () => {
    assert.deepEqual(load({ [name]: 'dht=2, mdns = 0.5' }).s.discoveryStepTimeouts,
      { 'announce-file': 3, bootstrap: 4, rendezvous: 5, dht: 2, mdns: 0.5 })
    assert.deepEqual(load({ [name]: 'announce_file=1,BOOTSTRAP=7,rendezvous=9' }).s.discoveryStepTimeouts,
      { 'announce-file': 1, bootstrap: 7, rendezvous: 9, dht: 8, mdns: 5 })
  })

  it('rejects unknown names, missing seconds and bad values', () => {
    rejects(name, ['explicit=3', 'dht', 'dht=', 'dht=0', 'dht=-1', 'dht=601', 'dht=5s', 'dht=inf'])
    assert.match(refuse({ [name]: 'dht=3,foo=2' }).message, /unknown step "foo"/)
  })
})

describe('config security', () => {
  it('AUTH_MODE accepts only the shared-token spellings', () => {
    accepts(`${P}AUTH_MODE`, 'authMode', [['shared_token', 'shared_token'], ['Shared', 'shared'], ['token', 'token'], [' ', '']])
    assert.equal(load({ [`${D}AUTH_MODE`]: 'token' }).s.authMode, 'token')
    rejects(`${P}AUTH_MODE`, ['mcp_token', 'jwt', 'none', 'open'])
  })

  it('a truthy TRUST_TIERS is refused', () => {
    rejects(`${P}TRUST_TIERS`, ['1', 'on', 'tier1,tier2'])
    for (const w of ['0', 'off', '']) assert.doesNotThrow(() => load({ [`${P}TRUST_TIERS`]: w }))
  })

  it('planned variables warn once each, then are ignored', () => {
    const { warnings } = load({
      [`${P}SESSION_FAILOVER`]: '1',
      [`${D}SESSION_FAILOVER_TIMEOUT_S`]: '5',
      [`${P}CACHE_REPLICATE`]: '1',
      [`${P}ENCRYPT`]: '1',
      [`${P}ENCRYPTION_KEY`]: 'hunter2',
      [`${D}ENCRYPTION_KEY`]: 'hunter3',
      [`${P}ENCRYPTED`]: '',
      [`${P}CACHE_REPLICATE_N`]: ' '
    })
    assert.equal(warnings.length, 5, warnings.join('\n'))
    for (const n of [`${P}SESSION_FAILOVER`, `${D}SESSION_FAILOVER_TIMEOUT_S`, `${P}CACHE_REPLICATE`, `${P}ENCRYPT`, `${P}ENCRYPTION_KEY`]) {
      assert.ok(warnings.some(w => w.includes(`${n} `)), n)
    }
    assert.ok(!warnings.some(w => w.includes('hunter')))
  })

  it('TOKEN never appears in warnings or errors', () => {
    const { s, warnings } = load({ [`${P}TOKEN`]: 's3cret', [`${D}TOKEN`]: 'other-s3cret' })
    assert.equal(s.token, 's3cret')
    assert.equal(warnings.length, 1)
    assert.ok(!/s3cret/.test(warnings[0]))
    assert.match(warnings[0], /\*\*\*/)
    assert.equal(redactSettings(s).token, '***')
    assert.equal(redactSettings(load({}).s).token, null)
    const r = new EnvReader({}, () => {}, { secrets: [`${P}TOKEN`] })
    assert.throws(() => r.fail(`${D}TOKEN`, 's3cret', 'is bad'), (e: unknown) =>
      e instanceof ConfigError && e.value === '***' && !e.message.includes('s3cret'))
  })
})

describe('config derived values', () => {
  it('MCP rate capacity and refill default to MAX_FRAMES but may be set', () => {
    const m = 'IPFS_ACCELERATE_PY_MCP_P2P_'
    const { s } = load({ [`${m}MAX_FRAMES`]: '10', [`${m}RATE_REFILL_PER_SEC`]: '2.5' })
    assert.deepEqual([s.mcpRateCapacity, s.mcpRateRefillPerSec], [10, 2.5])
    assert.equal(load({}, { mcpMaxFrames: 7 }).s.mcpRateCapacity, 7)
  })

  it('CACHE_DIR is null unless set', () => {
    assert.equal(load({}).s.cacheDir, null)
    assert.equal(load({ [`${P}CACHE_DIR`]: '/c' }).s.cacheDir, '/c')
  })
})

describe('LOG_LEVEL and LOG_FORMAT', () => {
  it('are read like every other variable: ACCELERATE > DATASETS > the older TASKQUEUE_P2P_LOG_LEVEL', () => {
    assert.equal(load({}).s.logLevel, null, 'unset: each command has its own default')
    assert.equal(load({ [`${P}LOG_LEVEL`]: 'DEBUG' }).s.logLevel, 'debug')
    assert.equal(load({ [`${D}LOG_LEVEL`]: 'trace' }).s.logLevel, 'trace')
    assert.equal(load({ TASKQUEUE_P2P_LOG_LEVEL: 'error' }).s.logLevel, 'error')
    assert.equal(load({ TASKQUEUE_P2P_LOG_LEVEL: 'error', [`${P}LOG_LEVEL`]: 'warn' }).s.logLevel, 'warn')
    assert.deepEqual(loadLogSettings({ [`${P}LOG_LEVEL`]: 'silent' }, false), { logLevel: 'silent', logFormat: 'json' })
  })

  it('LOG_FORMAT is pretty on a terminal, json otherwise, unless set', () => {
    assert.equal(load({}, {}, { stderrIsTty: true }).s.logFormat, 'pretty')
    assert.equal(load({}, {}, { stderrIsTty: false }).s.logFormat, 'json')
    assert.equal(load({ [`${P}LOG_FORMAT`]: 'json' }, {}, { stderrIsTty: true }).s.logFormat, 'json')
    assert.equal(loadLogSettings({ [`${P}LOG_FORMAT`]: 'Pretty' }, false).logFormat, 'pretty')
  })

  it('an invalid value is a one-line error naming the variable', () => {
    assert.match(refuse({ [`${P}LOG_LEVEL`]: 'bogus' }).message, new RegExp(`^config error: ${P}LOG_LEVEL="bogus" is not a log level`))
    assert.equal(refuse({ TASKQUEUE_P2P_LOG_LEVEL: 'loud' }).variable, 'TASKQUEUE_P2P_LOG_LEVEL')
    assert.equal(refuse({ [`${P}LOG_FORMAT`]: 'xml' }).variable, `${P}LOG_FORMAT`)
    assert.throws(() => loadLogSettings({ [`${D}LOG_LEVEL`]: 'bogus' }, false),
      (e: unknown) => e instanceof ConfigError && e.variable === `${D}LOG_LEVEL`)
  })
})

describe('config access control (issue 21)', () => {
  const id = '12D3KooWGRUVh7ufDBM8SVDRRFB7gYGQMMj4dRKYcTHwdTexRoD8'
  it('TOKEN set empty is the open mode; unset is not', () => {
    assert.equal(load({ [`${P}TOKEN`]: '' }).s.tokenOpen, true)
    assert.equal(load({ IPFS_DATASETS_PY_TASK_P2P_TOKEN: ' ' }).s.tokenOpen, true)
    assert.equal(load({}).s.tokenOpen, false)
    assert.equal(load({ [`${P}TOKEN`]: 'x' }).s.tokenOpen, false)
  })
  it('ALLOW_PEERS: peer ids with optional roles, or a file of them', () => {
    accepts(`${P}ALLOW_PEERS`, 'allowPeers', [[`${id}, ${id}:worker`, { kind: 'list', entries: [{ peerId: id, role: 'admin' }, { peerId: id, role: 'worker' }] }]])
    rejects(`${P}ALLOW_PEERS`, ['not-a-peer', `${id}:root`, './no/such/file'])
  })
  it('ROLE_TOKENS: role:token pairs, secret', () => {
    assert.deepEqual(load({ [`${P}ROLE_TOKENS`]: 'worker:w1, client:c1' }).s.roleTokens, [{ role: 'worker', token: 'w1' }, { role: 'client', token: 'c1' }])
    const err = refuse({ [`${P}ROLE_TOKENS`]: 'boss:s3cret' })
    assert.ok(!err.message.includes('s3cret'), err.message)
    assert.equal(redactSettings(load({ [`${P}ROLE_TOKENS`]: 'worker:w1' }).s).roleTokens[0].token, '***')
  })
  it('SWARM_KEY: the /key/swarm/psk/1.0.0/ document or its 64 hex digits; SWARM_KEY_FILE', () => {
    const hex = 'ab'.repeat(32)
    const doc = `/key/swarm/psk/1.0.0/\n/base16/\n${hex}\n`
    assert.equal(load({ [`${P}SWARM_KEY`]: hex }).s.swarmKey, doc)
    assert.equal(load({ [`${P}SWARM_KEY`]: doc }).s.swarmKey, doc)
    const err = refuse({ [`${P}SWARM_KEY`]: 'abc' })
    assert.equal(err.variable, `${P}SWARM_KEY`)
    assert.ok(!err.message.includes('abc'), 'the key is never printed')
    assert.equal(refuse({ [`${P}SWARM_KEY_FILE`]: '/no/such/swarm.key' }).variable, `${P}SWARM_KEY_FILE`)
  })
  it('per-peer limits are ranged integers/numbers', () => {
    rejects(`${P}PEER_MAX_CONNECTIONS`, ['0', 'many'])
    assert.equal(load({ [`${P}PEER_OPS_PER_S`]: '50' }).s.peerOpsPerS, 50)
    rejects(`${P}PEER_OPS_PER_S`, ['-1', 'fast'])
    const d = load({}).s
    assert.deepEqual([d.peerMaxTasks, d.peerMaxTaskBytes], [2_000_000, 1024 ** 3])
    const off = load({ [`${P}PEER_MAX_TASKS`]: '0', [`${P}PEER_MAX_TASK_BYTES`]: '0' }).s
    assert.deepEqual([off.peerMaxTasks, off.peerMaxTaskBytes], [0, 0], '0 = off')
    rejects(`${P}PEER_MAX_TASKS`, ['-1', 'lots', '1.5'])
    rejects(`${P}PEER_MAX_TASK_BYTES`, ['-1', '1GiB'])
    assert.equal(d.peerMaxCacheBytes, d.cacheMaxBytes / 4, 'a quarter of the cache by default')
    assert.equal(load({ [`${P}CACHE_MAX_BYTES`]: String(8 * 1024 * 1024) }).s.peerMaxCacheBytes, 2 * 1024 * 1024, 'following CACHE_MAX_BYTES')
    assert.equal(load({ [`${P}PEER_MAX_CACHE_BYTES`]: '0' }).s.peerMaxCacheBytes, 0)
    rejects(`${P}PEER_MAX_CACHE_BYTES`, ['-1', 'half'])
  })
})

describe('TASK_QUEUE_URL (★ PostgreSQL queue)', () => {
  const V = 'IPFS_ACCELERATE_PY_TASK_QUEUE_URL'
  it('is unset (SQLite) by default and takes postgres:// and postgresql:// URLs, env or --queue-url', () => {
    assert.equal(load({}).s.queueUrl, null)
    assert.equal(load({ [V]: '' }).s.queueUrl, null)
    assert.equal(load({ [V]: 'postgres://u:pw@127.0.0.1:5432/q' }).s.queueUrl, 'postgres://u:pw@127.0.0.1:5432/q')
    assert.equal(load({}, { queueUrl: 'postgresql://db.example/q' }).s.queueUrl, 'postgresql://db.example/q')
  })
  it('refuses a bad URL with one line naming the variable, without the password', () => {
    const e = refuse({ [V]: 'mysql://u:secret@h/q' })
    assert.equal(e.variable, V)
    assert.ok(!e.message.includes('secret'))
    assert.match(e.message, /PostgreSQL URL.*scheme mysql/)
    assert.equal(refuse({ [V]: 'not a url' }).variable, V)
    assert.equal(refuse({}, { queueUrl: 'postgres://' }).variable, '--queue-url')
  })
  it('TASK_QUEUE_POOL_SIZE: 10 by default, 1..1000, either spelling or --queue-pool-size; anything else one line naming it', () => {
    const POOL = 'IPFS_ACCELERATE_PY_TASK_QUEUE_POOL_SIZE'
    assert.equal(load({}).s.queuePoolSize, 10)
    accepts(POOL, 'queuePoolSize', [['1', 1], ['25', 25], ['1000', 1000]])
    assert.equal(load({ IPFS_DATASETS_PY_TASK_QUEUE_POOL_SIZE: '4' }).s.queuePoolSize, 4)
    assert.equal(load({ [POOL]: '4' }, { queuePoolSize: 7 }).s.queuePoolSize, 7)
    rejects(POOL, ['0', '1001', '-1', '2.5', 'ten'])
    assert.equal(refuse({}, { queuePoolSize: 0 }).variable, '--queue-pool-size')
  })
  it('redacts the password for logs', () => {
    const s = redactSettings(load({ [V]: 'postgres://u:pw@h:5432/q' }).s)
    assert.equal(s.queueUrl, 'postgres://u:***@h:5432/q'.replace('***', encodeURIComponent('***')))
  })
})
