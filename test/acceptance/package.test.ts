/**
 * The package as `npm pack` builds it, unpacked the way npm installs it: the files list
 * carries everything the library entry point and both bins need at run time, and
 * nothing of the tests or benches. Offline: the unpacked package borrows this
 * checkout's node_modules instead of installing its dependencies.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
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
    for (const f of ['package.json', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/service-entry.js', 'dist/bundle/p2p-rpc.js', 'bin/launch.cjs', 'bin/p2p-rpc.js', 'bin/taskqueue-p2p.js', 'scripts/p2p_rpc',
      'LICENSE', 'docs/configuration.md', 'deploy/systemd/taskqueue-p2p-serve.service', 'deploy/systemd/taskqueue-p2p.env.example']) {
      assert.ok(files.includes(f), `${f} is packed`)
    }
    assert.deepEqual(files.filter((f) => f.startsWith('dist/test/') || f.startsWith('dist/bench/') || f.startsWith('src/')), [])
  })

  it('is MIT licensed in package.json and LICENSE alike', () => {
    const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { license: string }
    assert.equal(manifest.license, 'MIT')
    assert.match(readFileSync(join(pkg, 'LICENSE'), 'utf8'), /^MIT License\n/)
  })

  it('ships source maps only with their sources embedded', () => {
    const maps = files.filter((f) => f.endsWith('.map'))
    assert.ok(maps.length > 0, 'maps are shipped (otherwise this test would check nothing)')
    for (const f of maps) {
      const map = JSON.parse(readFileSync(join(pkg, f), 'utf8')) as { sources: string[], sourcesContent?: Array<string | null> }
      assert.equal(map.sourcesContent?.length, map.sources.length, `${f} embeds every source`)
      assert.ok(map.sourcesContent.every((c) => typeof c === 'string' && c.length > 0), `${f} has no empty source`)
    }
  })

  it('the client entry point never loads the store: no SQLite warning; the service is its own export', async () => {
    writeFileSync(join(dir, 'app', 'client.js'), [
      "import { RemoteQueue, Worker, RemoteBackend } from 'taskqueue-p2p'",
      "import * as client from 'taskqueue-p2p'",
      "process.stdout.write(JSON.stringify([typeof RemoteQueue, typeof Worker, typeof RemoteBackend, 'startServiceNode' in client, 'LocalBackend' in client]))"
    ].join('\n'))
    const r = await runNode([join(dir, 'app', 'client.js')], { PATH: process.env.PATH ?? '/usr/bin:/bin' })
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(JSON.parse(r.stdout), ['function', 'function', 'function', false, false])
    assert.equal(r.stderr, '', 'nothing on stderr: no ExperimentalWarning for SQLite')

    writeFileSync(join(dir, 'app', 'service.js'), [
      "import { startServiceNode, LocalBackend, RemoteQueue } from 'taskqueue-p2p/service'",
      "process.stdout.write(JSON.stringify([typeof startServiceNode, typeof LocalBackend, typeof RemoteQueue]))"
    ].join('\n'))
    const s = await runNode([join(dir, 'app', 'service.js')], { PATH: process.env.PATH ?? '/usr/bin:/bin' })
    assert.equal(s.code, 0, s.stderr)
    assert.deepEqual(JSON.parse(s.stdout), ['function', 'function', 'function'])
  })

  it('is importable by name from an application', async () => {
    writeFileSync(join(dir, 'app', 'main.js'), [
      "import { RemoteQueue, Worker, VERSION } from 'taskqueue-p2p'",
      "import { startServiceNode } from 'taskqueue-p2p/service'",
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
    const pointer = daemon.stdout.match(/(docs\/[\w./-]+\.md)/)
    assert.ok(pointer !== null, '--help names where the environment variables are documented')
    assert.ok(files.includes(pointer[1]), `${pointer[1]} is in the package`)
  })
})

describe('documentation and deployment files', () => {
  const docs = ['README.md', 'docs/configuration.md', 'deploy/systemd/README.md']

  it('every relative link in the docs resolves to a file inside the repository (and its #anchor to a heading)', () => {
    const slug = (h: string): string => h.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-')
    let checked = 0
    for (const doc of docs) {
      const text = readFileSync(join(ROOT, doc), 'utf8')
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]
        if (/^[a-z]+:/.test(target)) continue
        const [path, anchor] = target.split('#')
        const file = path === '' ? join(ROOT, doc) : resolve(dirname(join(ROOT, doc)), path)
        assert.ok(!relative(ROOT, file).startsWith('..'), `${doc}: ${target} points outside the repository`)
        assert.ok(existsSync(file), `${doc}: ${target} does not exist`)
        if (anchor !== undefined && anchor !== '') {
          const headings = [...readFileSync(file, 'utf8').matchAll(/^#+ (.+)$/gm)].map((h) => slug(h[1]))
          assert.ok(headings.includes(anchor), `${doc}: #${anchor} is not a heading of ${path}`)
        }
        checked++
      }
    }
    assert.ok(checked >= 8, `links were found (${checked})`)
  })

  it('the systemd units pass systemd-analyze and each names an environment file that has an example', async (t) => {
    const unitDir = join(ROOT, 'deploy/systemd')
    const units = readdirSync(unitDir).filter((f) => f.endsWith('.service'))
    assert.deepEqual(units.map((u) => u.replace(/^taskqueue-p2p-|@?\.service$/g, '')).sort(), ['relay', 'serve', 'worker'])
    for (const u of units) {
      const text = readFileSync(join(unitDir, u), 'utf8')
      const command = u.replace(/^taskqueue-p2p-|@?\.service$/g, '')
      assert.match(text, new RegExp(`^ExecStart=.*taskqueue-p2p ${command}\\b`, 'm'), u)
      const envFile = text.match(/^EnvironmentFile=\/etc\/taskqueue-p2p\/(.+)$/m)
      assert.ok(envFile !== null, `${u} reads an environment file`)
      assert.ok(existsSync(join(unitDir, `${envFile[1]}.example`)), `${envFile[1]}.example exists`)
    }
    const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p))
    if (analyze === undefined) {
      // Loud, and a failure under CI: .ci/run installs systemd.
      if (process.env.CI === 'true') assert.fail('systemd-analyze is missing (install the systemd package)')
      t.diagnostic('SYSTEMD-ANALYZE MISSING: the unit syntax was not verified')
      return
    }
    for (const u of units) {
      // An instance name for the template, as systemctl would have it.
      const file = u.includes('@') ? join(mkdtempSync(join(tmpdir(), 'tq-unit-')), u.replace('@', '@w1')) : join(unitDir, u)
      if (u.includes('@')) writeFileSync(file, readFileSync(join(unitDir, u)))
      const r: { stderr: string } = await run(analyze, ['verify', file], { timeout: 60_000 }).catch((err: { stderr: string }) => err)
      const complaints = r.stderr.split('\n').filter((l: string) => l.trim() !== '' && !/Command .* is not executable|not found|No such file/.test(l))
      assert.deepEqual(complaints, [], `${u}: systemd-analyze verify`)
    }
  })
})
