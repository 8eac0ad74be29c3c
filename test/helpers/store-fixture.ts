/** Store test fixtures: a temporary queue file with an injectable clock. */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DatabaseSync } from 'node:sqlite'
import { openDatabase, QueueStore, type ClaimInput, type QueueStoreOptions, type SubmitInput } from '../../src/store/index.js'

export function tmpDir (): string {
  return mkdtempSync(join(tmpdir(), 'tq-store-'))
}

export class Clock {
  t = 1_700_000_000
  now = (): number => this.t
  advance (s: number): void { this.t += s }
}

export interface Fixture {
  dir: string
  path: string
  db: DatabaseSync
  q: QueueStore
  clock: Clock
  close: () => void
}

export function fixture (opts: Partial<QueueStoreOptions> = {}): Fixture {
  const dir = tmpDir()
  const path = join(dir, 'queue.sqlite3')
  const db = openDatabase(path)
  const clock = new Clock()
  const q = new QueueStore({ db, leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false, now: clock.now, ...opts })
  return { dir, path, db, q, clock, close: () => { db.close(); rmSync(dir, { recursive: true, force: true }) } }
}

export function sub (over: Partial<SubmitInput> = {}): SubmitInput {
  return { task_type: 'text-generation', model_name: 'm', payload: {}, priority: 5, max_attempts: 3, next_attempt_at: 0, idempotency_key: null, ...over }
}

export function claimIn (worker: string, over: Partial<ClaimInput> = {}): ClaimInput {
  return { worker_id: worker, peer_key: worker, session: '', task_types: null, lease_s: 3600, max_tasks: 1, same_task_type: false, transport_peer_id: '', peer_hint: '', ...over }
}
