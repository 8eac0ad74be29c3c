import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  UsageError, formatHelp, parseCommandLine, parseIntegerOption, parseJsonObjectOption, parseJsonOption,
  parseListOption, parseNumberOption
} from '../../src/cli/args.js'
import type { ParsedArgs, ProgramSpec } from '../../src/cli/args.js'
import { PROGRAM } from '../../src/cli/p2p-rpc.js'

const SPEC: ProgramSpec = {
  name: 'demo',
  version: '1.2.3',
  summary: 'A demo program.',
  globalOptions: [
    { name: 'multiaddr', type: 'string', valueName: 'MA', help: 'target' },
    { name: 'pretty', type: 'boolean', help: 'indent' }
  ],
  commands: [
    {
      name: 'get',
      summary: 'get a thing',
      options: [
        { name: 'key', type: 'string', valueName: 'K', required: true, help: 'the key' },
        { name: 'timeout', type: 'string', valueName: 'S', default: '10', help: 'deadline' },
        { name: 'detail', type: 'boolean', help: 'more' }
      ]
    },
    {
      name: 'serve',
      summary: 'serve things',
      options: [{ name: 'handlers', type: 'string', valueName: 'MODULE', repeatable: true, help: 'handler module' }]
    }
  ]
}

function parse (argv: string[], spec: ProgramSpec = SPEC): ParsedArgs {
  const r = parseCommandLine(spec, argv)
  assert.equal(r.kind, 'command')
  if (r.kind !== 'command') throw new Error('unreachable')
  return r.args
}

function usage (argv: string[], pattern: RegExp, spec: ProgramSpec = SPEC): UsageError {
  try {
    parseCommandLine(spec, argv)
  } catch (err) {
    assert.ok(err instanceof UsageError, `expected UsageError, got ${String(err)}`)
    assert.equal(err.code, 'usage')
    assert.match(err.message, pattern)
    return err
  }
  assert.fail(`expected a usage error for ${JSON.stringify(argv)}`)
}

describe('parseCommandLine', () => {
  it('accepts global options before and after the command', () => {
    for (const argv of [
      ['--multiaddr', '/ip4/1.2.3.4/tcp/1', '--pretty', 'get', '--key', 'k'],
      ['get', '--key', 'k', '--multiaddr', '/ip4/1.2.3.4/tcp/1', '--pretty'],
      ['--pretty', 'get', '--multiaddr=/ip4/1.2.3.4/tcp/1', '--key=k']
    ]) {
      const a = parse(argv)
      assert.equal(a.command, 'get')
      assert.equal(a.string('multiaddr'), '/ip4/1.2.3.4/tcp/1')
      assert.equal(a.flag('pretty'), true)
      assert.equal(a.string('key'), 'k')
    }
  })

  it('applies defaults and tells given from defaulted', () => {
    const a = parse(['get', '--key', 'k'])
    assert.equal(a.string('timeout'), '10')
    assert.equal(a.has('timeout'), false)
    assert.equal(a.flag('detail'), false)
    assert.equal(a.string('multiaddr'), undefined)
    const b = parse(['get', '--key', 'k', '--timeout', '3', '--detail'])
    assert.equal(b.string('timeout'), '3')
    assert.equal(b.has('timeout'), true)
    assert.equal(b.flag('detail'), true)
  })

  it('keeps values that look like negative numbers or are empty', () => {
    assert.equal(parse(['get', '--key', '-5']).string('key'), '-5')
    assert.equal(parse(['get', '--key', '']).string('key'), '')
    assert.equal(parse(['get', '--key', '{"a":-1}']).string('key'), '{"a":-1}')
  })

  it('collects repeatable options in order', () => {
    assert.deepEqual(parse(['serve', '--handlers', 'a.js', '--handlers=b.js']).list('handlers'), ['a.js', 'b.js'])
    assert.deepEqual(parse(['serve']).list('handlers'), [])
  })

  it('rejects unknown options, before or after the command', () => {
    usage(['get', '--key', 'k', '--bogus'], /unknown option --bogus/)
    usage(['--bogus', 'get', '--key', 'k'], /unknown option --bogus/)
    usage(['get', '--key', 'k', '-x'], /unknown option -x/)
  })

  it('says when a command option comes before the command or belongs to another command', () => {
    usage(['--key', 'k', 'get'], /--key must come after the command/)
    usage(['get', '--key', 'k', '--handlers', 'x'], /unknown option --handlers \(not an option of get\)/)
  })

  it('rejects missing required options and missing values', () => {
    const e = usage(['get'], /missing required option --key/)
    assert.equal(e.command, 'get')
    usage(['get', '--key'], /--key needs a value/)
    usage(['get', '--key', '--detail'], /--key needs a value/)
  })

  it('rejects repeated single options, values for booleans, stray words', () => {
    usage(['get', '--key', 'a', '--key', 'b'], /given more than once/)
    usage(['get', '--key', 'a', '--detail=1'], /takes no value/)
    usage(['get', '--key', 'a', 'extra'], /unexpected argument "extra"/)
  })

  it('rejects a missing or unknown command', () => {
    usage([], /missing command/)
    usage(['--pretty'], /missing command/)
    usage(['frob'], /unknown command "frob"/)
  })

  it('answers --help and --version before anything else', () => {
    const h = parseCommandLine(SPEC, ['--help'])
    assert.equal(h.kind, 'help')
    const hc = parseCommandLine(SPEC, ['get', '--bogus', '-h'])
    assert.equal(hc.kind, 'help')
    if (hc.kind === 'help') assert.match(hc.text, /^Usage: demo get/)
    const v = parseCommandLine(SPEC, ['get', '--version'])
    assert.deepEqual(v, { kind: 'version', text: 'demo 1.2.3\n' })
    // After `--` it is just a word.
    usage(['get', '--key', 'k', '--', '--help'], /unexpected argument "--help"/)
  })
})

describe('formatHelp', () => {
  it('lists every command and every global option', () => {
    const text = formatHelp(SPEC)
    for (const c of SPEC.commands) assert.ok(text.includes(c.name))
    for (const o of ['--multiaddr MA', '--pretty', '-h, --help', '--version']) assert.ok(text.includes(o), o)
  })

  it('documents each command option with its notes', () => {
    const text = formatHelp(SPEC, 'get')
    assert.match(text, /--key K\s+the key \(required\)/)
    assert.match(text, /--timeout S\s+deadline \(default: 10\)/)
    assert.match(text, /--multiaddr MA/)
    assert.match(formatHelp(SPEC, 'serve'), /\(repeatable\)/)
  })

  it('covers every option p2p-rpc accepts (help cannot lie)', () => {
    for (const c of PROGRAM.commands) {
      const text = formatHelp(PROGRAM, c.name)
      for (const o of c.options) assert.ok(text.includes(`--${o.name}`), `${c.name} --${o.name}`)
    }
  })
})

describe('p2p-rpc table', () => {
  it('has every subcommand of cli.md §1.2', () => {
    // Our own commands (★ additions, e.g. task-submit-many) may come beside them.
    const names = new Set(PROGRAM.commands.map((c) => c.name))
    const missing = [
      'cache-delete', 'cache-get', 'cache-has', 'cache-set', 'call-tool', 'discover', 'doctor', 'status', 'task-cancel',
      'task-claim', 'task-complete', 'task-get', 'task-heartbeat', 'task-list', 'task-release', 'task-submit', 'task-wait'
    ].filter((n) => !names.has(n))
    assert.deepEqual(missing, [])
  })

  it('parses global flags on either side of a subcommand', () => {
    const a = parse(['--peer-id', 'P', 'task-submit', '--task-type', 't', '--model-name', 'm', '--pretty', '--announce-file', 'off'], PROGRAM)
    assert.equal(a.string('peer-id'), 'P')
    assert.equal(a.string('announce-file'), 'off')
    assert.equal(a.flag('pretty'), true)
    assert.equal(a.string('payload'), '{}')
  })

  it('requires the starred flags', () => {
    usage(['task-release', '--task-id', 'x'], /--worker-id/, PROGRAM)
    usage(['call-tool'], /--tool/, PROGRAM)
    usage(['cache-set', '--key', 'k'], /--value/, PROGRAM)
  })
})

describe('typed values', () => {
  it('parses JSON and JSON objects', () => {
    assert.deepEqual(parseJsonOption('value', '[1,"é"]'), [1, 'é'])
    assert.equal(parseJsonOption('value', '"x"'), 'x')
    assert.equal(parseJsonOption('value', 'null'), null)
    assert.deepEqual(parseJsonObjectOption('args', '{"a":{"b":1}}'), { a: { b: 1 } })
    assert.throws(() => parseJsonOption('value', '{bad'), (e: unknown) => e instanceof UsageError && /--value is not valid JSON/.test(e.message))
    assert.throws(() => parseJsonOption('value', ''), UsageError)
    for (const text of ['[]', '1', '"s"', 'null', 'true']) {
      assert.throws(() => parseJsonObjectOption('payload', text), (e: unknown) => e instanceof UsageError && /--payload must be a JSON object/.test(e.message))
    }
  })

  it('parses numbers with bounds', () => {
    assert.equal(parseNumberOption('timeout', '2.5', { min: 0, exclusiveMin: true }), 2.5)
    assert.equal(parseIntegerOption('priority', '-3'), -3)
    assert.throws(() => parseNumberOption('timeout', '0', { min: 0, exclusiveMin: true }), /must be > 0/)
    assert.throws(() => parseNumberOption('timeout', '0x10'), /not a number/)
    assert.throws(() => parseNumberOption('timeout', 'inf'), /not a number/)
    assert.throws(() => parseIntegerOption('limit', '1.5'), /not an integer/)
    assert.throws(() => parseIntegerOption('priority', '11', { min: 1, max: 10 }), /must be >= 1 and <= 10/)
  })

  it('splits lists', () => {
    assert.deepEqual(parseListOption(' a, b,,c '), ['a', 'b', 'c'])
    assert.deepEqual(parseListOption(''), [])
  })
})
