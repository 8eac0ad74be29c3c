/**
 * `p2p-rpc task-wait` on a real terminal (issue 18, item 6): with stderr a TTY it keeps one
 * progress line there, rewritten in place (`\r`, erase line) from the ★ events stream,
 * while stdout stays the one JSON document at the end. Run under a pseudo-terminal made
 * by util-linux `script` (bsdutils, Essential in Debian), stdout redirected to a file so
 * the terminal holds stderr alone. Without a terminal, stderr gets no progress line.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { NODE, RPC_BIN, runRpc, sandbox, startDaemon } from '../helpers/procs.js'
import type { Daemon, Env, Sandbox } from '../helpers/procs.js'

const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0
const shellQuote = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`

/** Runs `cmd` under a pseudo-terminal; resolves with what the terminal showed and the exit code. */
async function underPty (cmd: string, env: Env, timeoutMs: number): Promise<{ code: number | null, terminal: string }> {
  const proc = spawn('script', ['-qec', cmd, '/dev/null'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let terminal = ''
  proc.stdout.on('data', (d: Buffer) => { terminal += d.toString() })
  proc.stderr.on('data', (d: Buffer) => { terminal += d.toString() })
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs)
  const code = await new Promise<number | null>((resolve) => proc.on('close', (c) => resolve(c)))
  clearTimeout(timer)
  return { code, terminal }
}

describe('task-wait on a terminal', () => {
  let box: Sandbox
  let svc: Daemon

  before(async () => {
    if (!hasScript) return
    box = sandbox()
    // Reports two steps of progress a second and a half apart (the worker flushes progress each second).
    const handlers = join(box.dir, 'handlers.mjs')
    writeFileSync(handlers, `const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
export default {
  steps: async (task, { progress }) => {
    progress({ step: 1 }); await sleep(1500)
    progress({ step: 2 }); await sleep(1500)
    return { steps: 2 }
  }
}
`)
    svc = await startDaemon('serve', ['--worker', '--handlers', handlers], box.env)
  })
  after(async () => {
    await svc?.stop()
    box?.cleanup()
  })

  it('has util-linux script', (t) => {
    if (!hasScript) {
      const msg = 'UTIL-LINUX `script` IS MISSING: task-wait\'s terminal progress line was NOT tested'
      if (process.env.CI === 'true') assert.fail(msg)
      t.diagnostic(msg)
      t.skip(msg)
    }
  })

  it('shows a progress line on stderr, rewritten in place, and prints one JSON document on stdout', async (t) => {
    if (!hasScript) return t.skip('no script')
    // Due in 5 s, so task-wait (a fresh process on a loaded machine) follows the events
    // before the worker claims it: the line starts from the events after it asks.
    const sub = await runRpc(['task-submit', '--task-type', 'steps', '--model-name', 'm', '--delay', '5'], box.env)
    const id = String(sub.json?.task_id)
    assert.equal(sub.code, 0, sub.stdout)
    const out = join(box.dir, 'wait.json')
    const cmd = [NODE, RPC_BIN, 'task-wait', '--task-id', id, '--timeout', '60'].map(shellQuote).join(' ') + ` > ${shellQuote(out)}`
    const { code, terminal } = await underPty(cmd, box.env, 90_000)
    assert.equal(code, 0, terminal)

    // stdout (the file) is exactly one JSON document: the completed task.
    const doc = JSON.parse(readFileSync(out, 'utf8')) as { ok: boolean, result: { task_id: string, status: string, result: unknown } }
    assert.equal(doc.ok, true)
    assert.equal(doc.result.task_id, id)
    assert.equal(doc.result.status, 'completed')

    // The terminal: each state change rewrites the line (carriage return + erase line), in order.
    const frames = terminal.split('\r\x1b[K').slice(1).map((f) => f.replace(/[\r\n]+$/, ''))
    const prefix = `task ${id.slice(0, 8)}…`
    assert.ok(frames.length >= 4, `frames: ${JSON.stringify(terminal)}`)
    for (const f of frames) assert.ok(f.startsWith(prefix), `frame ${JSON.stringify(f)} names the task`)
    const at = (re: RegExp): number => frames.findIndex((f) => re.test(f))
    const claimed = at(/ · claimed · attempt 1/)
    const step1 = at(/ · progress · .*progress \{"step":1\}/)
    const step2 = at(/ · progress · .*progress \{"step":2\}/)
    const completed = at(/ · completed/)
    assert.ok(claimed >= 0 && step1 > claimed && step2 > step1 && completed > step2, `in order: ${JSON.stringify(frames)}`)
    // The line ends with a newline once the wait is over, and nothing but the line was written.
    assert.match(terminal, /completed[^\r\n]*\r?\n$/)
    assert.doesNotMatch(terminal, /"ok"/, 'the JSON document went to stdout, not the terminal')
  })

  it('without a terminal, stderr carries no progress line', async (t) => {
    if (!hasScript) return t.skip('no script')
    const sub = await runRpc(['task-submit', '--task-type', 'steps', '--model-name', 'm'], box.env)
    const r = await runRpc(['task-wait', '--task-id', String(sub.json?.task_id), '--timeout', '60'], box.env)
    assert.equal(r.code, 0, r.stderr)
    assert.equal((r.json?.result as { status?: string }).status, 'completed')
    assert.doesNotMatch(r.stderr, /\x1b\[K|progress/, r.stderr)
  })
})
