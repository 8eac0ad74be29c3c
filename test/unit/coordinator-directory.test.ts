/**
 * ★ The coordinator directory (issue 20): coordinators sharing one table list each
 * other (not themselves), a cleanly stopped one removes its row at once, and a killed
 * one — whose row is no longer written — drops out after three intervals. An in-memory
 * table stands in for the PostgreSQL one (the store's own test covers that).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { CoordinatorDirectory } from '../../src/service/coordinator-directory.js'
import type { CoordinatorRecord, CoordinatorTable } from '../../src/service/coordinator-directory.js'
import { silentLogger } from '../../src/logger.js'

const IDS = ['12D3KooWGRUVh9cXwuHhqUbwJDwcVZDU3hEMwv3LTtLXTJvmvQ3t', '12D3KooWSvQL4Zsz6XY7mBNdSuxqy2wRLBX3YZfxxSoVvF9pW4Fo', '12D3KooWRBaeCoyGnG4mYBPgdZyG73ZtdgrnwgvkLaq9s2UQdhH2']

function memoryTable (): CoordinatorTable & { rows: Map<string, CoordinatorRecord>, frozen: Set<string> } {
  const rows = new Map<string, CoordinatorRecord>()
  const frozen = new Set<string>()
  return {
    rows,
    frozen,
    upsert: async (row) => {
      const now = Date.now() / 1000
      if (!frozen.has(row.peer_id)) rows.set(row.peer_id, { ...row, seen_at: now })
      return now
    },
    list: async (since) => [...rows.values()].filter((r) => r.seen_at >= since),
    remove: async (peerId) => { rows.delete(peerId) }
  }
}

function directory (table: CoordinatorTable, id: string, port: number): CoordinatorDirectory {
  return new CoordinatorDirectory({ table, backend: { kind: 'postgres' }, intervalMs: 50, logger: silentLogger() }, {
    peerId: peerIdFromString(id),
    addressManager: { getAddresses: () => [multiaddr(`/ip4/127.0.0.1/tcp/${port}/p2p/${id}`)] }
  })
}

const until = async (cond: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

test('coordinators on one table list the others, and each leaves the list when it stops or dies', async () => {
  const table = memoryTable()
  const dirs = IDS.map((id, i) => directory(table, id, 4000 + i))
  for (const d of dirs) { await d.start(); d.afterStart() }
  try {
    await until(() => dirs.every((d) => d.info().coordinators.length === 2))
    const seenByFirst = dirs[0].info()
    assert.deepEqual(seenByFirst.backend, { kind: 'postgres' })
    assert.deepEqual(seenByFirst.coordinators.map((c) => c.peer_id).sort(), [IDS[1], IDS[2]].sort())
    assert.deepEqual(seenByFirst.coordinators.find((c) => c.peer_id === IDS[1])?.multiaddrs, [`/ip4/127.0.0.1/tcp/4001/p2p/${IDS[1]}`])
    // A clean stop removes the row at once.
    await dirs[1].stop()
    assert.equal(table.rows.has(IDS[1]), false)
    await until(() => dirs[0].info().coordinators.every((c) => c.peer_id !== IDS[1]))
    // A killed coordinator writes nothing more: it ages out (three intervals).
    table.frozen.add(IDS[2])
    await until(() => dirs[0].info().coordinators.length === 0)
  } finally {
    for (const d of dirs) await d.stop()
  }
})
