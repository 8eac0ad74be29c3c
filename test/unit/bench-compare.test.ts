/**
 * `npm run bench -- --only bullmq` at tiny sizes, our side alone (BENCH_CMP_SIDES=ours:
 * no Redis needed or installed): every shape runs through real processes — service,
 * worker, producer — and prints its figures. Asserts that the section works, not how
 * fast anything is.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { NODE, ROOT } from '../helpers/procs.js'

test('the bullmq section runs every shape at tiny sizes (our side only) and prints each figure', async () => {
  const child = spawn(NODE, [join(ROOT, 'dist', 'bench', 'run.js'), '--only', 'bullmq'], {
    env: {
      ...process.env,
      BENCH_CMP_SIDES: 'ours',
      BENCH_CMP_TASKS: '300',
      BENCH_CMP_BATCH: '100',
      BENCH_CMP_RTT: '20',
      BENCH_CMP_RTT_WARMUP: '5',
      BENCH_CMP_SHALLOW: '50',
      BENCH_CMP_DEEP: '1200',
      BENCH_CMP_DEEP_SAMPLES: '10',
      BENCH_CMP_ROUNDS: '1',
      BENCH_FLOOR_ROUNDS: '200'
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  assert.equal(code, 0, `bench failed:\n${out}\n${err}`)
  assert.match(err, /BULLMQ SIDE NOT RUN/, 'a one-sided run says so loudly')
  for (const title of ['one-by-one: 300 no-op tasks', 'bulk: 300 no-op tasks added in batches of 100', 'round trip: 20 sequential', 'deep queue: 10 claims and submits with 50 vs 1,200']) {
    assert.ok(out.includes(`[bullmq] ${title}`), `section ${title} printed:\n${out}`)
  }
  const ours = out.split('\n').filter((l) => l.trimStart().startsWith('ours '))
  // one-by-one and bulk: 6 figures each; round trip: 4 + 4 per-task costs; deep: 9.
  assert.equal(ours.length, 6 + 6 + 8 + 9, out)
  for (const line of ours) assert.match(line, /^ {4}ours {4}[\d,.]+ {3}median [\d,.]+$/, line)
  assert.ok(!out.includes('BullMQ  '), 'no BullMQ figures without its side')
  assert.match(out, /floor: bare js-libp2p/)
})
