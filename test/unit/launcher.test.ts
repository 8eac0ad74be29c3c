/**
 * bin/launch.cjs runs the bundled CLI in a checkout only while it is at least as new as
 * the tsc output it was built from, in an installed package always, and the bundle
 * itself is a working p2p-rpc.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT, runNode } from '../helpers/procs.js'
import type { Env } from '../helpers/procs.js'

const ENV: Env = { PATH: process.env.PATH ?? '/usr/bin:/bin' }

/**
 * A fake package root holding a copy of the launcher, an entry and its bundle; a
 * checkout (with src/) unless `installed`.
 */
function fakeRoot (installed = false): { dir: string, run: () => Promise<string>, touch: (file: string, secondsAgo: number) => void } {
  const dir = mkdtempSync(join(tmpdir(), 'tq-launch-'))
  mkdirSync(join(dir, 'bin'))
  if (!installed) mkdirSync(join(dir, 'src'))
  mkdirSync(join(dir, 'dist'))
  copyFileSync(join(ROOT, 'bin/launch.cjs'), join(dir, 'bin/launch.cjs'))
  writeFileSync(join(dir, 'dist/entry.js'), "process.stdout.write('entry')\n")
  writeFileSync(join(dir, 'dist/bundle.js'), "process.stdout.write('bundle')\n")
  writeFileSync(join(dir, 'bin/cli.cjs'), "require('./launch.cjs')('dist/entry.js', 'dist/bundle.js')\n")
  return {
    dir,
    run: async () => (await runNode([join(dir, 'bin/cli.cjs')], ENV)).stdout,
    touch: (file, secondsAgo) => {
      const t = new Date(Date.now() - secondsAgo * 1000)
      utimesSync(join(dir, file), t, t)
    }
  }
}

describe('bin/launch.cjs', () => {
  it('runs the bundle when it is at least as new as the entry', async () => {
    const r = fakeRoot()
    try {
      r.touch('dist/entry.js', 60)
      r.touch('dist/bundle.js', 10)
      assert.equal(await r.run(), 'bundle')
    } finally { rmSync(r.dir, { recursive: true, force: true }) }
  })

  it('runs the entry when the bundle is older (tsc ran after the last bundle)', async () => {
    const r = fakeRoot()
    try {
      r.touch('dist/bundle.js', 60)
      r.touch('dist/entry.js', 10)
      assert.equal(await r.run(), 'entry')
    } finally { rmSync(r.dir, { recursive: true, force: true }) }
  })

  it('runs the bundle of an installed package (no src/) whatever the unpacked mtimes say', async () => {
    const r = fakeRoot(true)
    try {
      r.touch('dist/bundle.js', 60)
      r.touch('dist/entry.js', 10)
      assert.equal(await r.run(), 'bundle')
    } finally { rmSync(r.dir, { recursive: true, force: true }) }
  })

  it('runs the entry when there is no bundle', async () => {
    const r = fakeRoot()
    try {
      rmSync(join(r.dir, 'dist/bundle.js'))
      assert.equal(await r.run(), 'entry')
    } finally { rmSync(r.dir, { recursive: true, force: true }) }
  })
})

describe('the bundled p2p-rpc (dist/bundle/p2p-rpc.js)', () => {
  it('knows its version and its usage errors', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
    const bundle = join(ROOT, 'dist/bundle/p2p-rpc.js')
    const version = await runNode([bundle, '--version'], ENV)
    assert.equal(version.code, 0, version.stderr)
    assert.equal(version.stdout.trim(), `p2p-rpc ${pkg.version}`)
    const bad = await runNode([bundle, 'no-such-command'], ENV)
    assert.notEqual(bad.code, 0)
    assert.equal(bad.json?.ok, false)
  })
})
