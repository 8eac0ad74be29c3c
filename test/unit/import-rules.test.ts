/**
 * The folder import rules of ARCHITECTURE.md hold for src/, and the check really
 * catches a forbidden import: run on a copy of src/ with one bad import added, it fails
 * and names the file, the line and the rule.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { packageRoot } from '../../src/package-root.js'

const ROOT = packageRoot(import.meta.url) ?? process.cwd()
const SCRIPT = join(ROOT, 'scripts', 'check-imports.mjs')

function runCheck (srcDir: string): { status: number | null, out: string } {
  const r = spawnSync(process.execPath, [SCRIPT, srcDir], { encoding: 'utf8', timeout: 60_000 })
  return { status: r.status, out: `${r.stdout}${r.stderr}` }
}

test('src/ follows the folder import rules', () => {
  const r = runCheck(join(ROOT, 'src'))
  assert.equal(r.status, 0, r.out)
  assert.match(r.out, /imports ok/)
})

test('a forbidden import fails the check, named by file, line and rule', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tq-imports-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  cpSync(join(ROOT, 'src'), join(dir, 'src'), { recursive: true })
  const ids = join(dir, 'src', 'protocol', 'ids.ts')
  const line = readFileSync(ids, 'utf8').split('\n').length
  appendFileSync(ids, "import type { TaskQueueService } from '../service/service.js'\n")
  const r = runCheck(join(dir, 'src'))
  assert.equal(r.status, 1, r.out)
  assert.match(r.out, new RegExp(`protocol/ids\\.ts:${line}: protocol may not import service`))

  // The cycle this issue removed: discovery reaching back into the client.
  const chain = join(dir, 'src', 'discovery', 'chain.ts')
  writeFileSync(ids, readFileSync(ids, 'utf8').replace("import type { TaskQueueService } from '../service/service.js'\n", ''))
  writeFileSync(chain, `export { PeerLink } from '../client/peer-link.js'\n${readFileSync(chain, 'utf8')}`)
  const again = runCheck(join(dir, 'src'))
  assert.equal(again.status, 1, again.out)
  assert.match(again.out, /discovery\/chain\.ts:1: discovery may not import client/)
  assert.doesNotMatch(again.out, /protocol\/ids/)
})

test('a folder without a rule fails the check', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tq-imports-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  cpSync(join(ROOT, 'src'), join(dir, 'src'), { recursive: true })
  cpSync(join(dir, 'src', 'util'), join(dir, 'src', 'misc'), { recursive: true })
  const r = runCheck(join(dir, 'src'))
  assert.equal(r.status, 1, r.out)
  assert.match(r.out, /src\/misc has no import rule/)
})
