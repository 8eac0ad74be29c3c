/**
 * ★ The coordinator directory (issue 20): coordinators sharing one table list each
 * other (not themselves), a cleanly stopped one removes its row at once, and a killed
 * one — whose row is no longer written — drops out after three intervals. On an
 * in-memory table, then on the PostgreSQL one (a throwaway cluster).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { CoordinatorDirectory } from '../../src/service/coordinator-directory.js'
import type { CoordinatorRecord, CoordinatorTable } from '../../src/service/coordinator-directory.js'
import { silentLogger } from '../../src/logger.js'
import { PgCoordinatorTable } from '../../src/store/pg/coordinators.js'
import { PgQueueStore } from '../../src/store/pg/queue.js'
import { requirePostgres, startPostgres } from '../helpers/postgres.js'

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

test('postgres: the coordinators table of one database lists every coordinator on it', async (t) => {
  if (!requirePostgres(t)) return
  const cluster = await startPostgres()
  t.after(() => { cluster.stop() })
  const url = cluster.createDatabase('fleet')
  // The store migrates the schema (the table is one of its migrations).
  const stores = await Promise.all(IDS.map(async () => await PgQueueStore.open({ url, leaseS: 60, peerTimeoutS: 60 })))
  t.after(async () => { for (const s of stores) await s.close() })
  const dirs = IDS.map((id, i) => directory(new PgCoordinatorTable(stores[i].pool), id, 5000 + i))
  for (const d of dirs) { await d.start(); d.afterStart() }
  try {
    await until(() => dirs.every((d) => d.info().coordinators.length === 2))
    assert.deepEqual(dirs[2].info().coordinators.map((c) => c.peer_id).sort(), [IDS[0], IDS[1]].sort())
    assert.deepEqual(dirs[2].info().coordinators.find((c) => c.peer_id === IDS[0])?.multiaddrs, [`/ip4/127.0.0.1/tcp/5000/p2p/${IDS[0]}`])
    await dirs[0].stop()
    assert.equal(cluster.psql(`SELECT count(*) FROM tq_coordinators WHERE peer_id = '${IDS[0]}'`, 'fleet').trim(), '0')
    await until(() => dirs[1].info().coordinators.map((c) => c.peer_id).join() === IDS[2])
  } finally {
    for (const d of dirs) await d.stop()
  }
})
