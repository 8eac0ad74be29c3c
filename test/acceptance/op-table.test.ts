/**
 * The op table (src/protocol/ops.ts) is the only list of ops and aliases: a build whose
 * table has one more alias — a one-line change, made here to a copy of the compiled
 * code — is understood by the client and by both service transports (MCP++ and legacy
 * NDJSON) over real libp2p, with nothing else edited.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { lookupOp } from '../../src/protocol/ops.js'
import { RawClient } from '../helpers/raw-client.js'
import { sandbox } from '../helpers/procs.js'
import type { Sandbox } from '../helpers/procs.js'
import type * as Config from '../../src/config/index.js'
import type * as Ops from '../../src/protocol/ops.js'
import type * as Client from '../../src/client/remote-queue.js'
import type * as ServiceNodeModule from '../../src/service/service-node.js'

const ALIAS = 'enqueue_probe'
type Obj = Record<string, any>

/** dist/src, copied next to itself (so its packages still resolve) with `ALIAS` added to submit's row. */
function buildWithExtraAlias (): { root: string, remove: () => void } {
  const distSrc = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src')
  const copy = mkdtempSync(join(dirname(distSrc), '.op-alias-'))
  cpSync(distSrc, join(copy, 'src'), { recursive: true })
  const opsFile = join(copy, 'src', 'protocol', 'ops.js')
  const row = "op('submit', []"
  const source = readFileSync(opsFile, 'utf8')
  assert.ok(source.includes(row), `the compiled op table still has the row ${row}`)
  writeFileSync(opsFile, source.replace(row, `op('submit', ['${ALIAS}']`))
  return { root: join(copy, 'src'), remove: () => rmSync(copy, { recursive: true, force: true }) }
}

describe('one alias added to the op table', () => {
  let build: { root: string, remove: () => void }
  let box: Sandbox
  let svc: ServiceNodeModule.ServiceNode
  let client: Client.RemoteQueue
  let raw: RawClient
  let ops: typeof Ops
  let clientModule: typeof Client

  before(async () => {
    build = buildWithExtraAlias()
    const load = async <T>(path: string): Promise<T> => await import(pathToFileURL(join(build.root, path)).href) as T
    ops = await load<typeof Ops>('protocol/ops.js')
    clientModule = await load<typeof Client>('client/remote-queue.js')
    const config = await load<typeof Config>('config/index.js')
    const serviceNode = await load<typeof ServiceNodeModule>('service/service-node.js')
    box = sandbox({ IPFS_ACCELERATE_PY_TASK_P2P_ENABLE_LEGACY_PROTOCOL: '1' })
    svc = await serviceNode.startServiceNode({ settings: config.loadSettings(box.env, {}, () => {}, { role: 'serve' }) })
    client = new clientModule.RemoteQueue({ multiaddr: svc.multiaddr, settings: config.loadSettings(box.env, {}, () => {}, { role: 'client' }), addressBookPath: null })
    raw = await RawClient.create(svc.multiaddr)
  })

  after(async () => {
    await raw?.close()
    await client?.close()
    await svc?.stop()
    box?.cleanup()
    build?.remove()
  })

  it('is unknown to the unchanged table (the change is what the rest of the test sees)', () => {
    assert.equal(lookupOp(ALIAS), undefined)
    assert.equal(ops.lookupOp(ALIAS)?.name, 'submit')
  })

  it('the client treats it as submit: repeatable after it was sent, and a long poll with wait_s', () => {
    assert.deepEqual(clientModule.requestPolicy(ALIAS, {}), { idempotent: true, exclusive: false })
    assert.deepEqual(clientModule.requestPolicy(ALIAS, { wait_s: 5 }), { idempotent: true, exclusive: true })
  })

  it('the client sends it and the MCP++ transport answers it as a submit', async () => {
    const reply = await client.ok(ALIAS, { task_type: 'probe', payload: { idempotency_key: 'via-client' } })
    assert.equal(typeof reply.task_id, 'string')
    const viaOriginalClient = await raw.originalCall({ op: ALIAS, task_type: 'probe', payload: { idempotency_key: 'via-mcp' } }) as Obj
    assert.equal(viaOriginalClient.ok, true, JSON.stringify(viaOriginalClient))
    const task = await client.get(viaOriginalClient.task_id)
    assert.equal(task?.task_type, 'probe')
  })

  it('the legacy NDJSON transport answers it as a submit', async () => {
    const reply = await raw.legacyCall(JSON.stringify({ op: ALIAS, task_type: 'probe', payload: { idempotency_key: 'via-legacy' } }) + '\n') as Obj
    assert.equal(reply.ok, true, JSON.stringify(reply))
    const task = await client.get(reply.task_id)
    assert.equal(task?.status, 'queued')
  })
})
