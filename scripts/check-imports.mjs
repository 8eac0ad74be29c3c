#!/usr/bin/env node
// Enforces the folder import rules of ARCHITECTURE.md on src/: every relative import
// (static, `export … from`, dynamic) from one top-level unit of src/ (a folder, or a file
// directly in src/) must go to a unit that its rule lists. Units are layered, so the
// rules also rule out cycles between folders. Usage: node scripts/check-imports.mjs [srcDir]
// Exits 1 and lists every forbidden import; a unit without a rule is an error too.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Foundations: no knowledge of libp2p nodes, queues or peers. */
const FOUNDATION = ['util', 'protocol', 'config', 'logger.ts', 'version.ts', 'package-root.ts']

/** unit -> the units it may import (besides itself). Keep in step with ARCHITECTURE.md. */
export const RULES = {
  'util': [],
  'protocol': ['util'],
  'config': ['util', 'protocol'],
  'package-root.ts': [],
  'version.ts': ['package-root.ts'],
  'logger.ts': ['config', 'util'],
  'node': FOUNDATION,
  'store': FOUNDATION,
  'tools': FOUNDATION,
  'nat': [...FOUNDATION, 'node'],
  'discovery': [...FOUNDATION, 'node', 'nat'],
  'client': [...FOUNDATION, 'node', 'nat', 'discovery'],
  'service': [...FOUNDATION, 'node', 'nat', 'discovery', 'store', 'tools'],
  'worker': [...FOUNDATION, 'client', 'store', 'tools'],
  'coordination': [...FOUNDATION, 'node', 'nat', 'discovery'],
  'cli': [...FOUNDATION, 'node', 'nat', 'discovery', 'store', 'tools', 'client', 'service', 'worker', 'coordination'],
  'index.ts': [...FOUNDATION, 'node', 'nat', 'discovery', 'store', 'tools', 'client', 'service', 'worker', 'coordination'],
  'service-entry.ts': [...FOUNDATION, 'node', 'nat', 'discovery', 'store', 'tools', 'client', 'service', 'worker', 'coordination', 'index.ts']
}

const IMPORT = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;])import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g

function files (dir) {
  const out = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out.push(...files(p))
    else if (name.endsWith('.ts')) out.push(p)
  }
  return out
}

function unitOf (srcDir, file) {
  return relative(srcDir, file).split(sep)[0]
}

/** Every forbidden import under `srcDir`, as printable lines. */
export function check (srcDir) {
  const problems = []
  for (const file of files(srcDir)) {
    const from = unitOf(srcDir, file)
    const allowed = RULES[from]
    if (allowed === undefined) {
      problems.push(`${relative(srcDir, file)}: src/${from} has no import rule (add it to scripts/check-imports.mjs and ARCHITECTURE.md)`)
      continue
    }
    const text = readFileSync(file, 'utf8')
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2] ?? m[3]
      if (!spec.startsWith('.')) continue
      const target = resolve(dirname(file), spec)
      const rel = relative(srcDir, target)
      if (rel.startsWith('..')) {
        problems.push(`${relative(srcDir, file)}: imports ${spec}, outside src/`)
        continue
      }
      const to = rel.split(sep)[0].replace(/\.js$/, '.ts')
      if (to !== from && !allowed.includes(to)) {
        // The match may begin with the whitespace before `import`; count lines up to the keyword.
        const line = text.slice(0, m.index + m[0].length - m[0].trimStart().length).split('\n').length
        problems.push(`${relative(srcDir, file)}:${line}: ${from} may not import ${to} (${spec})`)
      }
    }
  }
  return problems
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const srcDir = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'src'))
  const problems = check(srcDir)
  for (const p of problems) console.error(p)
  if (problems.length > 0) {
    console.error(`${problems.length} forbidden import(s); the rules are in ARCHITECTURE.md`)
    process.exit(1)
  }
  console.log(`imports ok: ${files(srcDir).length} files follow the folder rules`)
}
