/**
 * How a long-poll claim runs on PostgreSQL (service/pg-writes.ts): an idle claimer parks
 * after one `mayClaim` read instead of a claim transaction that writes nothing, and work
 * queued while it looked (a change event during the read) makes it look again rather
 * than park past it.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { PgWrites } from '../../src/service/pg-writes.js'
import type { ParkedClaim } from '../../src/service/write-batcher.js'
import type { ClaimedTask } from '../../src/protocol/types.js'
import type { TaskStore } from '../../src/store/task-store.js'
import type { TaskChange } from '../../src/store/types.js'

const queued: TaskChange = { task_id: 't1', status: 'queued', task_type: 'echo', kind: 'submitted' }
const task = { task_id: 't1' } as unknown as ClaimedTask

function scripted (may: () => Promise<boolean>, claims: ClaimedTask[][]): ParkedClaim & { calls: { may: number, claim: number } } {
  const calls = { may: 0, claim: 0 }
  return {
    calls,
    types: null,
    deliver: () => {},
    mayClaim: async () => { calls.may++; return await may() },
    claim: async () => { calls.claim++; return claims.shift() ?? [] }
  }
}

test('an idle long-poll claimer parks after one read, without a claim transaction', async () => {
  const store = new EventEmitter() as unknown as TaskStore
  const w = new PgWrites(store)
  try {
    const c = scripted(async () => false, [])
    assert.deepEqual(await w.claim(c, true), [])
    assert.deepEqual(c.calls, { may: 1, claim: 0 })
    assert.equal(w.parkedClaims, 1)
    assert.equal(w.counters.commits, 0, 'no transaction was counted')
  } finally {
    w.close()
  }
})

test('work queued while the read ran makes the claimer look again instead of parking past it', async () => {
  const store = new EventEmitter() as unknown as TaskStore
  const w = new PgWrites(store)
  try {
    let first = true
    // The first read saw nothing, but a submit's change arrived before it answered.
    const c = scripted(async () => {
      if (first) { first = false; store.emit('change', queued); return false }
      return true
    }, [[task]])
    assert.deepEqual(await w.claim(c, true), [task])
    assert.deepEqual(c.calls, { may: 2, claim: 1 })
    assert.equal(w.parkedClaims, 0)
  } finally {
    w.close()
  }
})

test('a claim without parking (max wait 0) claims at once, without the read', async () => {
  const store = new EventEmitter() as unknown as TaskStore
  const w = new PgWrites(store)
  try {
    const c = scripted(async () => false, [[task]])
    assert.deepEqual(await w.claim(c, false), [task])
    assert.deepEqual(c.calls, { may: 0, claim: 1 })
  } finally {
    w.close()
  }
})
