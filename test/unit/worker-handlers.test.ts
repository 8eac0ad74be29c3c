import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ClaimedTask, JsonObject } from '../../src/store/index.js'
import { ToolRegistry } from '../../src/tools/registry.js'
import {
  builtinHandlers, claimTaskTypes, dispatchTable, echoHandler, handlersFromModule, loadHandlerModule,
  mergeHandlers, sleepHandler, toolCallHandler, type TaskContext
} from '../../src/worker/index.js'

function task (taskType: string, payload: JsonObject = {}): ClaimedTask {
  return {
    task_id: 'b'.repeat(32), task_type: taskType, model_name: '', payload, created_at: 0, status: 'running',
    assigned_worker: 'w', lease_until: 0, attempt: 1, max_attempts: 3, priority: 5
  }
}

function ctx (signal: AbortSignal = new AbortController().signal): TaskContext {
  return { signal, workerId: 'w', progress: () => {} }
}

test('echo returns the payload', async () => {
  assert.deepEqual(await echoHandler(task('echo', { a: 1 }), ctx()), { a: 1 })
})

test('sleep sleeps, validates, and honours abort', async () => {
  assert.deepEqual(await sleepHandler(task('sleep', { seconds: 0.02 }), ctx()), { slept: 0.02 })
  await assert.rejects(async () => await sleepHandler(task('sleep', { seconds: 3601 }), ctx()), /at most 3600/)
  await assert.rejects(async () => await sleepHandler(task('sleep', { seconds: 'x' }), ctx()), /non-negative number/)
  const ac = new AbortController()
  const t0 = Date.now()
  const p = sleepHandler(task('sleep', { seconds: 30 }), ctx(ac.signal))
  setTimeout(() => ac.abort(new Error('stop now')), 20)
  await assert.rejects(async () => await p, /stop now/)
  assert.ok(Date.now() - t0 < 1000)
})

test('tool.call runs a worker-side tool and returns {tool, result}', async () => {
  const tools = new ToolRegistry()
  let seenCaller = ''
  tools.register({
    name: 'add',
    description: 'adds',
    context: 'worker',
    handler: (args, info) => { seenCaller = info.callerPeerId; return Number(args.a) + Number(args.b) }
  })
  const h = toolCallHandler(tools)
  assert.deepEqual(await h(task('tool.call', { tool: 'add', args: { a: 2, b: 3 }, _peer_id: '12D3Koo' }), ctx()), { tool: 'add', result: 5 })
  assert.equal(seenCaller, '12D3Koo')
  await assert.rejects(async () => await h(task('tool.call', { tool: 'nope', args: {} }), ctx()), /tool_not_found.*"nope"/)
  await assert.rejects(async () => await h(task('tool.call', { args: {} }), ctx()), /no tool name/)
  // A handler-less worker tool declared on the service side cannot run here.
  tools.register({ name: 'remote_only', description: '', context: 'worker' })
  await assert.rejects(async () => await h(task('tool.call', { tool: 'remote_only' }), ctx()), /no handler/)
})

test('built-ins and merging: later maps override by canonical type', () => {
  const b = builtinHandlers()
  assert.deepEqual(Object.keys(b).sort(), ['echo', 'sleep', 'tool.call'])
  const mine = (): string => 'mine'
  const merged = mergeHandlers(b, { tool: mine })
  const table = dispatchTable(merged)
  assert.equal(table.get('tool.call'), mine)
  assert.equal(Object.keys(merged).length, 3)
  assert.throws(() => dispatchTable({ x: 5 as unknown as () => void }), /not a function/)
})

test('claimTaskTypes expands aliases and intersects the allowlist', () => {
  assert.deepEqual(claimTaskTypes(['tool.call'], null), ['tool.call', 'tool'])
  assert.deepEqual(claimTaskTypes(['tool.call', 'echo'], ['TOOL']), ['tool.call', 'tool'])
  assert.deepEqual(claimTaskTypes(['echo'], ['other']), [])
})

test('loadHandlerModule accepts default and named exports, by path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tq-handlers-'))
  try {
    writeFileSync(join(dir, 'a.mjs'), 'export default { "my.type": (t) => ({ id: t.task_id }) }\n')
    writeFileSync(join(dir, 'b.mjs'), 'export const handlers = { other: () => 1 }\n')
    writeFileSync(join(dir, 'c.cjs'), 'module.exports = { handlers: { cjs: () => 2 } }\n')
    writeFileSync(join(dir, 'bad.mjs'), 'export const x = 1\n')
    writeFileSync(join(dir, 'bad2.mjs'), 'export default { t: 1 }\n')
    const a = await loadHandlerModule('./a.mjs', { cwd: dir })
    assert.deepEqual(await a['my.type'](task('my.type'), ctx()), { id: 'b'.repeat(32) })
    assert.deepEqual(Object.keys(await loadHandlerModule(join(dir, 'b.mjs'))), ['other'])
    assert.deepEqual(Object.keys(await loadHandlerModule('c.cjs', { cwd: dir })), ['cjs'])
    await assert.rejects(loadHandlerModule('./bad.mjs', { cwd: dir }), /named "handlers" export/)
    await assert.rejects(loadHandlerModule('./bad2.mjs', { cwd: dir }), /handler "t" is not a function/)
    await assert.rejects(loadHandlerModule('./missing.mjs', { cwd: dir }), /cannot load handler module/)
    await assert.rejects(loadHandlerModule('no-such-package-xyz', { cwd: dir }), /cannot load handler module/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  assert.throws(() => handlersFromModule({}), TypeError)
})
