import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomUUID } from 'node:crypto'
import {
  SCHEDULER_CLOCK, schedulerScore, pickOwner, isOwner, PeerRegistry, peerKey, MAX_CANDIDATES,
  normalizeTaskType, canonicalTaskType, canonicalTaskTypes, expandTaskTypes
} from '../../src/store/index.js'
import { beats } from '../../src/store/scheduler.js'

const sha256 = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex')

test('SCHEDULER_CLOCK merkle_root is SHA-256 of Python json.dumps([["taskqueue-service", 0]])', () => {
  // json.dumps' default separators are (", ", ": "): a space after each comma.
  assert.equal(sha256('[["taskqueue-service", 0]]'), SCHEDULER_CLOCK.merkle_root)
  // JavaScript's compact JSON.stringify gives a different text, hence a different hash.
  const compact = JSON.stringify([['taskqueue-service', 0]])
  assert.equal(compact, '[["taskqueue-service",0]]')
  assert.notEqual(sha256(compact), SCHEDULER_CLOCK.merkle_root)
  assert.deepEqual(JSON.parse(JSON.stringify(SCHEDULER_CLOCK)), {
    node_id: 'taskqueue-service',
    vector: { 'taskqueue-service': 0 },
    merkle_root: 'd83964234cb3f7451644cb8dfbd8a97cb70571490208c3ffcb5b346c43c380fa'
  })
})

test('schedulerScore: first 8 bytes of SHA-256(task_id \\n peer), big-endian (Python-computed vectors)', () => {
  assert.equal(schedulerScore('0123456789abcdef0123456789abcdef', '12D3KooWPeerA'), 8681854932485014703n)
  assert.equal(schedulerScore('task-1', 'worker-1'), 17475183521429162935n)
  assert.equal(schedulerScore('x', ''), 8343824688036161609n)
})

test('pickOwner: highest score, order-independent, null when empty; ties go to the smaller identity', () => {
  assert.equal(pickOwner('t', []), null)
  assert.equal(pickOwner('t', ['only']), 'only')
  const peers = ['peerA', 'peerB', 'peerC', 'peerD']
  const counts = new Map<string, number>()
  for (let i = 0; i < 400; i++) {
    const id = randomUUID().replaceAll('-', '')
    const owner = pickOwner(id, peers)
    assert.equal(pickOwner(id, [...peers].reverse()), owner)
    const best = peers.reduce((a, b) => (schedulerScore(id, b) > schedulerScore(id, a) ? b : a))
    assert.equal(owner, best)
    for (const p of peers) assert.equal(isOwner(id, p, peers), p === owner)
    counts.set(owner ?? '', (counts.get(owner ?? '') ?? 0) + 1)
  }
  // Roughly uniform: every peer owns a fair share.
  for (const p of peers) assert.ok((counts.get(p) ?? 0) > 50, `${p} owns ${counts.get(p) ?? 0}`)
  // Equal scores (SHA-256 collisions do not happen in tests, so use the comparator).
  assert.equal(beats(5n, 'a', 5n, 'b'), true)
  assert.equal(beats(5n, 'b', 5n, 'a'), false)
  assert.equal(beats(6n, 'b', 5n, 'a'), true)
})

test('task-type aliases: normalise, canonicalise, expand', () => {
  assert.equal(normalizeTaskType('  Text_Generation '), 'text_generation')
  assert.equal(canonicalTaskType('Generation'), 'text-generation')
  assert.equal(canonicalTaskType('STT'), 'voice.asr')
  assert.equal(canonicalTaskType('my.custom'), 'my.custom')
  assert.deepEqual(expandTaskTypes(['TTS']), ['voice.tts', 'voice_tts', 'voice-tts', 'tts', 'text-to-speech', 'text_to_speech'])
  assert.deepEqual(expandTaskTypes(['text_generation', 'generation', ' Custom ', '']), ['text-generation', 'text_generation', 'generation', 'custom'])
  assert.deepEqual(expandTaskTypes(['tool']), ['tool.call', 'tool'])
  assert.deepEqual(expandTaskTypes(['hf_pipeline', 'llm.generate', 'text-classification']),
    ['hf.pipeline', 'hf_pipeline', 'llm.generate', 'llm_generate', 'text-classification', 'text_classification'])
  assert.equal(expandTaskTypes(['automatic_speech_recognition']).length, 12)
  assert.equal(expandTaskTypes(['audio_validation']).length, 8)
  assert.deepEqual(expandTaskTypes(['embedding']), expandTaskTypes(expandTaskTypes(['Embeddings'])), 'idempotent')
  assert.deepEqual(canonicalTaskTypes(['tts', 'voice-tts', 'text2text', 'zzz']), ['text2text-generation', 'voice.tts', 'zzz'])
})

test('peer registry: key rule, liveness, partial refresh, bounded size', () => {
  assert.equal(peerKey({ peer: '', peer_id: ' ', worker_id: 'w1', transport_peer_id: '12D3' }), 'w1')
  assert.equal(peerKey({ peer_id: 'p', worker_id: 'w1', transport_peer_id: '12D3' }), 'p')
  assert.equal(peerKey({ transport_peer_id: '12D3' }), '12D3')
  let now = 1000
  const reg = new PeerRegistry({ timeoutS: 300, maxSize: 3, now: () => now })
  reg.touch({ peer_id: 'a', worker_id: 'wa', supported_task_types: ['tts'], session_id: 's' })
  now += 10
  const a = reg.touch({ peer_id: 'a', transport_peer_id: 't-a' }) // heartbeat without a profile keeps it
  assert.equal(a.worker_id, 'wa')
  assert.equal(a.session_id, 's')
  assert.ok(a.supported_task_types.includes('voice.tts'), 'types are alias-expanded')
  assert.equal(a.last_seen, 1010)
  reg.touch({ peer_id: 'b' })
  reg.touch({ peer_id: 'c' })
  reg.touch({ peer_id: 'd' })
  assert.equal(reg.size, 3)
  assert.equal(reg.get('a'), undefined, 'least recently touched dropped first')
  now += 301
  reg.touch({ peer_id: 'b' })
  assert.deepEqual(reg.live().map(e => e.peer_id), ['b'])
  assert.equal(reg.size, 1, 'dead entries pruned')
})

test('scheduler candidates: only recent claimers, bounded, version moves only when they change', () => {
  let now = 1000
  const reg = new PeerRegistry({ timeoutS: 300, now: () => now })
  for (let i = 0; i < 1000; i++) reg.touch({ peer_id: `hello-${i}`, worker_id: `w-${i}` })
  assert.deepEqual(reg.candidates().peers, [], 'ids that only said hello are no candidates')
  reg.touch({ peer_id: 'real', worker_id: 'wr', active: true })
  const c1 = reg.candidates()
  assert.deepEqual(c1.peers.map(p => p.peer_id), ['real'])
  // A heartbeat (same profile) or a hello from anyone else leaves the version alone.
  reg.touch({ peer_id: 'real', worker_id: 'wr' })
  reg.touch({ peer_id: 'hello-1', worker_id: 'w-1' })
  assert.equal(reg.candidates().version, c1.version)
  // A changed profile of a candidate moves it.
  reg.touch({ peer_id: 'real', worker_id: 'wr', supported_task_types: ['echo'] })
  assert.notEqual(reg.candidates().version, c1.version)
  // Lease renewal keeps a known worker a candidate; lapsing drops it.
  reg.markActive('hello-2', now)
  assert.deepEqual(reg.candidates().peers.map(p => p.peer_id).sort(), ['hello-2', 'real'])
  now += 301
  assert.deepEqual(reg.candidates().peers, [])
  // Bounded: at most MAX_CANDIDATES, the least recent claimers drop out first.
  for (let i = 0; i < MAX_CANDIDATES + 10; i++) reg.touch({ peer_id: `c-${i}`, worker_id: `wc-${i}`, active: true })
  const peers = reg.candidates().peers
  assert.equal(peers.length, MAX_CANDIDATES)
  assert.equal(peers[0].peer_id, 'c-10')
  // Replies list a bounded number of the most recently seen peers.
  assert.deepEqual(reg.recent(2).map(p => p.peer_id), [`c-${MAX_CANDIDATES + 8}`, `c-${MAX_CANDIDATES + 9}`])
})

test('a worker whose connection closed stops being a candidate owner at once', () => {
  const reg = new PeerRegistry({ timeoutS: 300, now: () => 1000 })
  reg.touch({ peer_id: 'gone', worker_id: 'w-gone', transport_peer_id: 'P1', active: true })
  reg.touch({ peer_id: 'stays', worker_id: 'w-stays', transport_peer_id: 'P2', active: true })
  assert.equal(reg.forgetTransportPeer('P1'), 1)
  assert.deepEqual(reg.candidates().peers.map(p => p.peer_id), ['stays'])
  // Its lease lapsing later finds nothing left to forget.
  reg.forgetWorker('w-gone')
  assert.deepEqual(reg.candidates().peers.map(p => p.peer_id), ['stays'])
})
