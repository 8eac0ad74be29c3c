/**
 * The package as `npm pack` builds it, unpacked the way npm installs it: the files list
 * carries everything the library entry point and both bins need at run time, and
 * nothing of the tests or benches. Offline: the unpacked package borrows this
 * checkout's node_modules instead of installing its dependencies.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ROOT, runNode } from '../helpers/procs.js'

const run = promisify(execFile)

describe('the packed package', () => {
  let dir: string
  let pkg: string
  let files: string[]

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tq-pack-'))
    const packed = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT, env: process.env, timeout: 120_000 })
    const [info] = JSON.parse(packed.stdout) as Array<{ filename: string, files: Array<{ path: string }> }>
    files = info.files.map((f) => f.path)
    await run('tar', ['-xzf', join(dir, info.filename), '-C', dir], { timeout: 60_000 })
    pkg = join(dir, 'package')
    symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'))
    // An application beside it that depends on the package by name.
    mkdirSync(join(dir, 'app', 'node_modules'), { recursive: true })
    symlinkSync(pkg, join(dir, 'app', 'node_modules', 'taskqueue-p2p'))
    writeFileSync(join(dir, 'app', 'package.json'), JSON.stringify({ name: 'app', type: 'module', private: true }))
  })

  after(() => { if (dir !== undefined) rmSync(dir, { recursive: true, force: true }) })

  it('holds the runtime files and no tests or benches', () => {
    for (const f of ['package.json', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/bundle/p2p-rpc.js', 'bin/launch.cjs', 'bin/p2p-rpc.js', 'bin/taskqueue-p2p.js', 'scripts/p2p_rpc']) {
      assert.ok(files.includes(f), `${f} is packed`)
    }
    assert.deepEqual(files.filter((f) => f.startsWith('dist/test/') || f.startsWith('dist/bench/') || f.startsWith('src/')), [])
  })

  it('is importable by name from an application', async () => {
    writeFileSync(join(dir, 'app', 'main.js'), [
      "import { RemoteQueue, startServiceNode, Worker, VERSION } from 'taskqueue-p2p'",
      "process.stdout.write(JSON.stringify([typeof RemoteQueue, typeof startServiceNode, typeof Worker, VERSION]))"
    ].join('\n'))
    const r = await runNode([join(dir, 'app', 'main.js')], { PATH: process.env.PATH ?? '/usr/bin:/bin' })
    assert.equal(r.code, 0, r.stderr)
    const [a, b, c, version] = JSON.parse(r.stdout) as string[]
    assert.deepEqual([a, b, c], ['function', 'function', 'function'])
    assert.match(version, /^\d+\.\d+\.\d+/)
  })

  it('runs both bins', async () => {
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir }
    const rpc = await runNode([join(pkg, 'bin/p2p-rpc.js'), '--help'], env)
    assert.equal(rpc.code, 0, rpc.stderr)
    assert.match(rpc.stdout, /Usage: p2p-rpc/)
    const daemon = await runNode([join(pkg, 'bin/taskqueue-p2p.js'), '--help'], env)
    assert.equal(daemon.code, 0, daemon.stderr)
    assert.match(daemon.stdout, /serve/)
  })
})
