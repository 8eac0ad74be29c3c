/**
 * What a failed discovery says (issue 22): every mechanism's reason, one hint for the
 * commonest cause, and `unauthorized` when a service was reached but refused the token.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { summarizeDiscoveryFailure } from '../../src/discovery/failure.js'
import type { AttemptRecord, DiscoveryTrace } from '../../src/discovery/types.js'

const rec = (method: AttemptRecord['method'], error: string, extra: Partial<AttemptRecord> = {}): AttemptRecord =>
  ({ method, ok: false, peer_id: '', multiaddr: '', error, response: null, elapsed_ms: 0, ...extra })
const trace = (attempts: AttemptRecord[]): DiscoveryTrace => ({ ok: false, result: null, nat: null, method: '', elapsed_ms: 0, attempts })
const unconfigured = [rec('bootstrap', 'not_explicitly_configured'), rec('rendezvous', 'no_rendezvous_point'), rec('dht', 'no_routing_peers')]

describe('discovery failure summary', () => {
  it('nothing configured and no announce file: every reason, and the hint to start a service', () => {
    const f = summarizeDiscoveryFailure(trace([rec('announce-file', 'no_announce_multiaddr'), ...unconfigured, rec('mdns', 'timeout')]))
    assert.equal(f.code, 'no_peer_found')
    assert.deepEqual(f.reasons, { 'announce-file': 'no_announce_multiaddr', bootstrap: 'not_explicitly_configured', rendezvous: 'no_rendezvous_point', dht: 'no_routing_peers', mdns: 'timeout' })
    assert.match(f.hint, /taskqueue-p2p serve/)
    assert.match(f.message, /announce-file: no_announce_multiaddr, bootstrap: not_explicitly_configured, .*mdns: timeout\); hint: /)
    assert.equal(f.message.includes('\n'), false, 'one line')
  })

  it('a stale announce file: names the file; the dial failure beats the later timeout', () => {
    const f = summarizeDiscoveryFailure(trace([
      rec('announce-file', 'dial_failed', { source: '/x/announce.json', multiaddr: '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWA' }),
      rec('announce-file', 'timeout'),
      ...unconfigured, rec('mdns', 'disabled')
    ]))
    assert.equal(f.reasons['announce-file'], 'dial_failed')
    assert.match(f.hint, /announce file \/x\/announce\.json .*stale/)
  })

  it('a bootstrap peer that does not answer gets its own hint', () => {
    const f = summarizeDiscoveryFailure(trace([rec('announce-file', 'no_announce_multiaddr'), rec('bootstrap', 'dial_failed'), rec('mdns', 'disabled')]))
    assert.match(f.hint, /BOOTSTRAP_PEERS/)
  })

  it('a service that refused the token, found by any mechanism, is unauthorized', () => {
    const f = summarizeDiscoveryFailure(trace([rec('announce-file', 'no_announce_multiaddr'), rec('mdns', 'unauthorized', { peer_id: '12D3KooWB', multiaddr: '/ip4/10.0.0.2/tcp/9710/p2p/12D3KooWB' })]))
    assert.equal(f.code, 'unauthorized')
    assert.deepEqual(f.refusedBy, { peer_id: '12D3KooWB', multiaddr: '/ip4/10.0.0.2/tcp/9710/p2p/12D3KooWB' })
    assert.match(f.message, /\/ip4\/10\.0\.0\.2\/tcp\/9710\/p2p\/12D3KooWB \(found by mdns\) refused our token/)
    assert.match(f.hint, /TOKEN/)
  })
})
