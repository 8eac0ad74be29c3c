import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { documentEmitted, emitDocument, formatDocument, writeStdout } from '../../src/cli/output.js'

async function collect (fn: (s: PassThrough) => Promise<unknown>): Promise<string> {
  const s = new PassThrough()
  const chunks: Buffer[] = []
  s.on('data', (c: Buffer) => chunks.push(c))
  await fn(s)
  s.end()
  await new Promise((resolve) => s.on('end', resolve))
  return Buffer.concat(chunks).toString('utf8')
}

describe('formatDocument', () => {
  const doc = { ok: true, zeta: 1, alpha: { b: [{ y: 1, x: 2 }], a: 'é ✓ 日本' } }

  it('is compact, one line, newline-terminated, in insertion order', () => {
    const text = formatDocument(doc)
    assert.equal(text, '{"ok":true,"zeta":1,"alpha":{"b":[{"y":1,"x":2}],"a":"é ✓ 日本"}}\n')
    assert.equal(text.split('\n').length, 2)
  })

  it('indents by 2 and sorts keys recursively with --pretty', () => {
    assert.equal(formatDocument(doc, true), [
      '{',
      '  "alpha": {',
      '    "a": "é ✓ 日本",',
      '    "b": [',
      '      {',
      '        "x": 2,',
      '        "y": 1',
      '      }',
      '    ]',
      '  },',
      '  "ok": true,',
      '  "zeta": 1',
      '}',
      ''
    ].join('\n'))
  })

  it('never escapes non-ASCII', () => {
    for (const pretty of [false, true]) {
      const text = formatDocument({ v: 'ü\u2028😀' }, pretty)
      assert.ok(!text.includes('\\u'), text)
      assert.deepEqual(JSON.parse(text), { v: 'ü\u2028😀' })
    }
  })

  it('keeps array order and null values', () => {
    assert.equal(formatDocument({ b: [3, 1, 2], a: null }, true), '{\n  "a": null,\n  "b": [\n    3,\n    1,\n    2\n  ]\n}\n')
  })
})

describe('writing', () => {
  it('writes the text once and resolves after the write callback', async () => {
    const out = await collect(async (s) => await writeStdout('{"ok":true}\n', s))
    assert.equal(out, '{"ok":true}\n')
  })

  it('emits exactly one document per process', async () => {
    assert.equal(documentEmitted(), false)
    const out = await collect(async (s) => {
      assert.equal(await emitDocument({ ok: false, error: 'usage', message: 'x' }, false, s), true)
      assert.equal(await emitDocument({ ok: true }, false, s), false)
    })
    assert.equal(out, '{"ok":false,"error":"usage","message":"x"}\n')
    assert.equal(documentEmitted(), true)
  })

  it('resolves even when the stream errors (EPIPE)', async () => {
    const s = new PassThrough()
    s.destroy()
    s.on('error', () => {})
    await writeStdout('x\n', s)
  })
})
