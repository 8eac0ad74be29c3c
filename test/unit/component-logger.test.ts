/**
 * libp2p's ComponentLogger over our pino logger: one sink, pino levels, libp2p's
 * format directives rendered, and nothing built when the level is above debug.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { pino } from 'pino'
import { multiaddr } from '@multiformats/multiaddr'
import { componentLogger, render } from '../../src/node/component-logger.js'

function sink (level: string): { log: pino.Logger, records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = []
  const log = pino({ name: 'q', level }, { write: (line: string) => { records.push(JSON.parse(line) as Record<string, unknown>) } })
  return { log, records }
}

describe('componentLogger', () => {
  it('writes libp2p components through the same pino logger, at debug and trace', () => {
    const { log, records } = sink('trace')
    const libp2p = componentLogger(log, {})
    assert.ok(libp2p !== undefined)
    const c = libp2p.forComponent('libp2p:tcp')
    assert.equal(c.enabled, true)
    c('listening on %a', multiaddr('/ip4/127.0.0.1/tcp/1'))
    c.error('dial failed %e', new Error('refused'))
    c.trace('bytes %d', 12)
    c.newScope('listener')('scoped %s', { port: 1 })
    log.info('queue line')
    assert.deepEqual(records.map((r) => [r.level, r.component, r.name]), [
      [20, 'libp2p:tcp', 'q'], [20, 'libp2p:tcp', 'q'], [10, 'libp2p:tcp', 'q'], [20, 'libp2p:tcp:listener', 'q'], [30, undefined, 'q']])
    assert.equal(records[0].msg, 'listening on /ip4/127.0.0.1/tcp/1')
    assert.equal(records[1].error, true)
    assert.match(String(records[1].msg), /^dial failed Error: refused/)
    assert.equal(records[2].msg, 'bytes 12')
    assert.equal(records[3].msg, 'scoped { port: 1 }')
  })

  it('is a shared no-op above debug, or without a logger; libp2p default with DEBUG', () => {
    const { log, records } = sink('info')
    const off = componentLogger(log, {})?.forComponent('libp2p:tcp')
    assert.equal(off?.enabled, false)
    off?.('nothing %s', 'here')
    assert.equal(records.length, 0)
    assert.equal(componentLogger(undefined, {})?.forComponent('x').enabled, false)
    assert.equal(componentLogger(log, { DEBUG: 'libp2p:*' }), undefined)
  })

  it('renders libp2p format directives and keeps extra arguments', () => {
    assert.equal(render('%b|%t|%p|%%|%s', [Uint8Array.of(1, 2), Uint8Array.of(1, 2), { toString: () => 'peer' }, 'x']), '5T|aeba|peer|%|x')
    assert.equal(render('a', ['b', 3]), 'a b 3')
    assert.equal(render('%s %s', ['only']), 'only %s')
  })
})
