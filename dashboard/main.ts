/**
 * The dashboard page: hash-routed views over the service's own ops (POST /api/op, with the
 * service token as a bearer token) and the counts endpoint. No framework: four views
 * and a chart are small enough for the DOM API. It follows the ★ events stream
 * (GET /api/events, server-sent events read through fetch so the token goes in a header,
 * not the URL) and re-renders when the queue changes; it polls only while the stream is down.
 */
type Json = Record<string, any>
export {}

const view = document.getElementById('view') as HTMLElement
const notice = document.getElementById('notice') as HTMLElement
const login = document.getElementById('login') as HTMLFormElement
const liveBadge = document.getElementById('live') as HTMLElement
/** Fallback polling, only while the events stream is down. */
const POLL_MS = 2000
const HISTORY = 150
/** Events kept for the overview's activity list. */
const RECENT = 25

// The token: from a link (#token=…, then dropped from the address bar) or this tab's storage.
const fromHash = new URLSearchParams(location.hash.replace(/^#\/?\??/, '').split('?').pop() ?? '').get('token')
if (fromHash !== null) {
  sessionStorage.setItem('tq-token', fromHash)
  window.history.replaceState(null, '', location.pathname + '#/')
}
let token = sessionStorage.getItem('tq-token') ?? ''

class Unauthorized extends Error {}

async function api (path: string, body?: Json): Promise<Json> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (token !== '') headers.authorization = `Bearer ${token}`
  const r = await fetch(path, { method: body === undefined ? 'GET' : 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body) })
  if (r.status === 401) throw new Unauthorized('unauthorized')
  const reply = await r.json() as Json
  if (reply.ok === false && reply.error === 'unauthorized') throw new Unauthorized('unauthorized')
  return reply
}
const op = async (name: string, fields: Json = {}): Promise<Json> => await api('/api/op', { op: name, ...fields })

login.addEventListener('submit', (e) => {
  e.preventDefault()
  token = (document.getElementById('token') as HTMLInputElement).value
  sessionStorage.setItem('tq-token', token)
  login.hidden = true
  void render()
  void follow()
})

/**
 * One notice line. A `problem` (the token is needed, the service is unreachable) holds only
 * until the next render succeeds; an action's outcome stays until something replaces it.
 */
function say (text: string, kind: 'problem' | 'action' = 'action'): void {
  notice.textContent = text
  notice.dataset.kind = kind
}
function clearProblem (): void {
  if (notice.dataset.kind === 'problem') say('')
}

function el (tag: string, attrs: Json = {}, ...children: Array<Node | string>): HTMLElement {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v)
    else e.setAttribute(k, String(v))
  }
  e.append(...children)
  return e
}
const fmtTime = (s: unknown): string => typeof s === 'number' && s > 0 ? new Date(s * 1000).toLocaleTimeString() : '—'
const json = (v: unknown): string => JSON.stringify(v ?? null, null, 2)

/** An action button: runs the op, says what the service answered, refreshes the view. */
function action (label: string, name: string, fields: Json, testId: string): HTMLElement {
  return el('button', {
    'data-testid': testId,
    onclick: async () => {
      const reply = await op(name, fields)
      say(reply.ok === true ? `${label}: done` : `${label}: ${String(reply.error)}${reply.error === 'unknown_op' ? ' (this service does not have it yet)' : ''}`)
      await render()
    }
  }, label)
}

// ---- overview: counts by status and type, over time ------------------------------------

/** Counts by status, one sample per render of the overview (named so it does not shadow window.history). */
const samples: Array<{ at: number, byStatus: Record<string, number> }> = []
const STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled']
const COLORS: Record<string, string> = { queued: '#8a6d00', running: '#1a56b3', completed: '#1e7b34', failed: '#b3261e', cancelled: '#777' }

async function sampleCounts (): Promise<Json> {
  const c = await api('/api/counts')
  const byStatus: Record<string, number> = {}
  for (const row of c.counts as Array<{ status: string, count: number }>) byStatus[row.status] = (byStatus[row.status] ?? 0) + row.count
  samples.push({ at: c.at, byStatus })
  if (samples.length > HISTORY) samples.shift()
  return c
}

function chart (): SVGElement {
  const w = 640
  const h = 160
  const ns = 'http://www.w3.org/2000/svg'
  const svg = document.createElementNS(ns, 'svg')
  svg.setAttribute('class', 'chart')
  svg.setAttribute('width', String(w))
  svg.setAttribute('height', String(h))
  const max = Math.max(1, ...samples.flatMap((p) => Object.values(p.byStatus)))
  // Samples are taken when something changed (the events stream), not on a clock: place
  // them by time, each count holding until the next sample (a step line).
  const first = samples[0]?.at ?? 0
  const span = Math.max(1, (samples[samples.length - 1]?.at ?? 0) - first)
  const x = (at: number): number => ((at - first) / span) * (w - 4) + 2
  for (const s of STATUSES) {
    const y = (p: { byStatus: Record<string, number> }): number => h - 10 - ((p.byStatus[s] ?? 0) / max) * (h - 20)
    const pts = samples.flatMap((p, i) => i === 0 ? [`${x(p.at)},${y(p)}`] : [`${x(p.at)},${y(samples[i - 1])}`, `${x(p.at)},${y(p)}`])
    const line = document.createElementNS(ns, 'polyline')
    line.setAttribute('points', pts.join(' '))
    line.setAttribute('fill', 'none')
    line.setAttribute('stroke', COLORS[s])
    line.setAttribute('stroke-width', '2')
    svg.append(line)
  }
  return svg
}

async function overview (): Promise<HTMLElement> {
  const c = await sampleCounts()
  const status = await op('status', { detail: true })
  const last = samples[samples.length - 1].byStatus
  const byType = new Map<string, Record<string, number>>()
  for (const row of c.counts as Array<{ status: string, task_type: string, count: number }>) {
    byType.set(row.task_type, { ...(byType.get(row.task_type) ?? {}), [row.status]: row.count })
  }
  const paused = status.queue?.paused?.all === true
  const activity = recent.slice().reverse().map((e) => el('li', { 'data-testid': `event-${String(e.kind)}-${String(e.task_id)}` },
    `${fmtTime(e.at)} · ${String(e.kind)} · ${String(e.task_type)} · ${String(e.task_id).slice(0, 12)}…${typeof e.error === 'string' ? ` · ${e.error}` : ''}`))
  return el('section', { 'data-testid': 'overview' },
    el('h2', {}, 'Queue'),
    el('div', { class: 'cards' }, ...STATUSES.map((s) => el('div', { class: 'card', 'data-testid': `count-${s}` }, el('b', {}, String(last[s] ?? 0)), s))),
    el('p', { class: 'muted' }, `oldest waiting task: ${Math.round(Number(c.oldest_queued_age_s))} s · ${paused ? 'PAUSED' : 'claiming'} · counts over the last ${Math.round(samples[samples.length - 1].at - samples[0].at)} s (${samples.length} samples):`),
    chart(),
    el('p', {}, paused ? action('Resume', 'resume', {}, 'resume') : action('Pause', 'pause', {}, 'pause'), action('Purge finished', 'purge', { status: 'completed' }, 'purge')),
    el('h3', {}, 'By task type'),
    el('table', {}, el('tr', {}, el('th', {}, 'task type'), ...STATUSES.map((s) => el('th', {}, s))),
      ...[...byType].map(([t, counts]) => el('tr', {}, el('td', {}, t), ...STATUSES.map((s) => el('td', {}, String(counts[s] ?? 0)))))),
    el('h3', {}, 'Recent activity'),
    activity.length > 0 ? el('ul', { class: 'activity', 'data-testid': 'activity' }, ...activity) : el('p', { class: 'muted' }, 'no changes since this page opened')
  )
}

// ---- tasks: filters and paging ----------------------------------------------------------

const listState: { status: string, type: string, cursors: Array<string | null> } = { status: '', type: '', cursors: [null] }

async function tasks (): Promise<HTMLElement> {
  const cursor = listState.cursors[listState.cursors.length - 1]
  const req: Json = { limit: 20, order: 'desc' }
  if (listState.status !== '') req.status = listState.status
  if (listState.type !== '') req.task_types = [listState.type]
  if (cursor !== null) req.cursor = cursor
  const reply = await op('list', req)
  const statusSel = el('select', { name: 'status', 'data-testid': 'filter-status' }, el('option', { value: '' }, 'any status'), ...STATUSES.map((s) => el('option', { value: s }, s))) as HTMLSelectElement
  statusSel.value = listState.status
  const typeIn = el('input', { name: 'type', placeholder: 'task type', value: listState.type, 'data-testid': 'filter-type' }) as HTMLInputElement
  const filters = el('form', { class: 'filters', onsubmit: (e: Event) => { e.preventDefault(); listState.status = statusSel.value; listState.type = typeIn.value.trim(); listState.cursors = [null]; void render() } },
    el('label', {}, 'status ', statusSel), el('label', {}, 'type ', typeIn), el('button', { type: 'submit' }, 'Filter'))
  const rows = (reply.tasks ?? []) as Json[]
  return el('section', { 'data-testid': 'tasks' },
    el('h2', {}, 'Tasks'), filters,
    el('table', {}, el('tr', {}, ...['task', 'type', 'status', 'attempt', 'worker', 'updated'].map((h) => el('th', {}, h))),
      ...rows.map((t) => el('tr', { class: 'row', 'data-testid': `task-${String(t.task_id)}`, onclick: () => { location.hash = `#/task/${String(t.task_id)}` } },
        el('td', {}, String(t.task_id).slice(0, 12) + '…'), el('td', {}, String(t.task_type)), el('td', { class: `status-${String(t.status)}` }, String(t.status)),
        el('td', {}, `${String(t.attempt ?? 0)}/${String(t.max_attempts ?? '—')}`), el('td', {}, String(t.assigned_worker ?? '—')), el('td', {}, fmtTime(t.updated_at))))),
    el('p', {},
      listState.cursors.length > 1 ? el('button', { onclick: () => { listState.cursors = [null]; void render() } }, 'First page') : '',
      reply.next_cursor != null ? el('button', { 'data-testid': 'next-page', onclick: () => { listState.cursors.push(String(reply.next_cursor)); void render() } }, 'Next page') : ''),
    rows.length === 0 ? el('p', { class: 'muted' }, 'no tasks') : '')
}

// ---- task detail ------------------------------------------------------------------------

async function detail (id: string): Promise<HTMLElement> {
  const reply = await op('get', { task_id: id })
  const t = (reply.task ?? null) as Json | null
  if (t === null) return el('p', {}, `task ${id}: ${String(reply.error ?? 'not found')}`)
  const terminal = ['completed', 'failed', 'cancelled'].includes(String(t.status))
  return el('section', { 'data-testid': 'detail' },
    el('h2', {}, `Task ${id}`),
    el('table', {}, ...[
      ['status', t.status], ['task type', t.task_type], ['model', t.model_name], ['attempt', `${String(t.attempt ?? 0)} of ${String(t.max_attempts ?? '—')}`],
      ['owner (worker)', t.assigned_worker ?? '—'], ['lease until', fmtTime(t.lease_until)], ['heartbeat', fmtTime(t.heartbeat_at)],
      ['created', fmtTime(t.created_at)], ['updated', fmtTime(t.updated_at)], ['error', t.error ?? '—']
    ].map(([k, v]) => el('tr', {}, el('th', {}, String(k)), el('td', { 'data-testid': `field-${String(k).replace(/\W+/g, '-')}` }, String(v))))),
    el('p', {}, terminal ? action('Retry', 'retry', { task_id: id }, 'retry') : action('Cancel', 'cancel', { task_id: id, reason: 'cancelled from the dashboard' }, 'cancel')),
    el('h3', {}, 'Payload'), el('pre', {}, json(t.payload)),
    el('h3', {}, 'Result'), el('pre', { 'data-testid': 'result' }, json(t.result)),
    el('h3', {}, 'Progress'), el('pre', {}, json(t.progress)),
    el('h3', {}, 'Failed attempts'),
    Array.isArray(t.errors) && t.errors.length > 0
      ? el('table', { 'data-testid': 'errors' }, el('tr', {}, ...['attempt', 'at', 'worker', 'error'].map((h) => el('th', {}, h))),
        ...(t.errors as Json[]).map((e) => el('tr', {}, el('td', {}, String(e.attempt)), el('td', {}, fmtTime(e.at)), el('td', {}, String(e.worker_id ?? '—')), el('td', {}, String(e.error)))))
      : el('p', { class: 'muted' }, 'none'))
}

// ---- workers, peers and reachability ------------------------------------------------------

async function workers (): Promise<HTMLElement> {
  const [status, running, doctor, peers] = await Promise.all([
    op('status', { detail: true }),
    op('list', { status: 'running', limit: 500 }),
    api('/api/doctor'),
    api('/api/peers')
  ])
  // A remote worker's connection: direct if any open connection to its peer is, else relayed.
  const kinds = new Map<string, string>()
  for (const p of (peers.peers ?? []) as Json[]) if (kinds.get(String(p.peer_id)) !== 'direct') kinds.set(String(p.peer_id), String(p.connection))
  const connection = (w: Json): string => typeof w.transport_peer_id !== 'string' || w.transport_peer_id === '' ? 'embedded (in the service)' : `remote, ${kinds.get(w.transport_peer_id) ?? 'not connected'}`
  const leases = new Map<string, number>()
  for (const t of (running.tasks ?? []) as Json[]) leases.set(String(t.assigned_worker), (leases.get(String(t.assigned_worker)) ?? 0) + 1)
  const ws = (status.scheduler?.known_workers ?? []) as Json[]
  const nat = (status.nat ?? {}) as Json
  return el('section', { 'data-testid': 'workers' },
    el('h2', {}, 'Workers'),
    el('table', {}, el('tr', {}, ...['worker', 'leases held', 'last seen', 'task types', 'connection'].map((h) => el('th', {}, h))),
      ...ws.map((w) => el('tr', {}, el('td', {}, String(w.worker_id)), el('td', {}, String(leases.get(String(w.worker_id)) ?? 0)), el('td', {}, fmtTime(w.last_seen)),
        el('td', {}, ((w.supported_task_types ?? []) as string[]).join(', ')), el('td', { 'data-testid': `connection-${String(w.worker_id)}` }, connection(w))))),
    el('h2', {}, 'This service'),
    el('table', {},
      el('tr', {}, el('th', {}, 'peer id'), el('td', {}, String(status.peer_id))),
      el('tr', {}, el('th', {}, 'addresses'), el('td', {}, ((status.multiaddrs ?? []) as string[]).join(' '))),
      el('tr', {}, el('th', {}, 'reachability (AutoNAT)'), el('td', { 'data-testid': 'autonat' }, String(nat.autonat?.status ?? 'unknown'))),
      el('tr', {}, el('th', {}, 'relay reservations'), el('td', {}, String((nat.relay?.reservations ?? []).length))),
      el('tr', {}, el('th', {}, 'hole punching'), el('td', {}, nat.holepunch?.enabled === true ? `${String(nat.holepunch.successes)}/${String(nat.holepunch.attempts)} upgrades` : 'off'))),
    doctorPanel(doctor))
}

const works = (m: Json): string => m.configured !== true ? 'not configured' : m.works === true ? 'works' : m.works === false ? 'FAILS' : 'not testable from here'

/** The doctor's verdict on this service, its fix, and what it is based on (as `taskqueue-p2p doctor`). */
function doctorPanel (reply: Json): HTMLElement {
  if (reply.ok !== true || reply.report === undefined) return el('p', { class: 'muted' }, `doctor: ${String(reply.error ?? 'unavailable')}`)
  const r = reply.report as Json
  const peers = (r.peers ?? []) as Json[]
  return el('div', { 'data-testid': 'doctor' },
    el('h2', {}, 'Doctor: discovery and NAT'),
    el('p', { class: r.verdict.ok === true ? 'verdict ok' : 'verdict fail', 'data-testid': 'verdict', 'data-code': String(r.verdict.code) }, String(r.verdict.text)),
    r.verdict.fix !== '' ? el('p', { 'data-testid': 'verdict-fix' }, el('b', {}, 'fix: '), String(r.verdict.fix)) : '',
    el('table', {}, el('tr', {}, ...['mechanism', 'state', 'detail'].map((h) => el('th', {}, h))),
      ...((r.discovery ?? []) as Json[]).map((m) => el('tr', { 'data-testid': `mechanism-${String(m.mechanism)}` },
        el('td', {}, String(m.mechanism)), el('td', { class: m.works === false ? 'status-failed' : '' }, works(m)), el('td', {}, String(m.detail))))),
    peers.length > 0
      ? el('table', {}, el('tr', {}, ...['configured peer', 'as', 'reachable', 'speaks'].map((h) => el('th', {}, h))),
        ...peers.map((p) => el('tr', {}, el('td', {}, String(p.addr)), el('td', {}, String(p.role)), el('td', {}, p.reachable === true ? `yes, ${String(p.elapsed_ms)} ms` : `no: ${String(p.error)}`),
          el('td', {}, ['hop', 'rendezvous', 'dht', 'taskqueue'].filter((k) => p[k] === true).join(', ') || '—'))))
      : el('p', { class: 'muted' }, 'no bootstrap, relay or rendezvous peers configured'),
    r.security !== undefined ? el('p', { class: 'muted' }, `token: ${String(r.security.token)} · allow list: ${String(r.security.allow_list)} · private network: ${String(r.security.private_network)}`) : '')
}

// ---- routing, rendering and live updates ---------------------------------------------------

let rendering = false
let again = false
async function render (): Promise<void> {
  if (rendering) { again = true; return }
  rendering = true
  const route = location.hash.replace(/^#/, '') || '/'
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', route === (a.getAttribute('href') ?? '').slice(1))
  try {
    const node = route.startsWith('/task/') ? await detail(decodeURIComponent(route.slice(6)))
      : route === '/tasks' ? await tasks()
        : route === '/workers' ? await workers()
          : await overview()
    view.replaceChildren(node)
    login.hidden = true
    clearProblem()
  } catch (err) {
    if (err instanceof Unauthorized) {
      login.hidden = false
      say('This service needs its token.', 'problem')
    } else say(`could not reach the service: ${(err as Error).message}`, 'problem')
  } finally {
    rendering = false
    if (again) { again = false; void render() }
  }
}

/** A change arrived: render now, unless the page is hidden or someone is typing in a filter. */
let stale = false
function changed (): void {
  const focused = document.activeElement
  if (document.visibilityState !== 'visible' || (focused !== null && view.contains(focused) && focused.matches('input, select, textarea'))) {
    stale = true
    return
  }
  void render()
}
document.addEventListener('visibilitychange', () => { if (stale && document.visibilityState === 'visible') { stale = false; void render() } })
view.addEventListener('focusout', () => { if (stale) { stale = false; setTimeout(changed, 0) } })

const recent: Json[] = []
let pollTimer: ReturnType<typeof setInterval> | undefined

/** `events`: following the stream; `poll`: the stream is down, poll meanwhile; `off`: no token yet. */
function setLive (mode: 'events' | 'poll' | 'off'): void {
  document.body.dataset.live = mode
  liveBadge.textContent = mode === 'events' ? '● live' : mode === 'poll' ? `○ polling every ${POLL_MS / 1000} s` : ''
  clearInterval(pollTimer)
  pollTimer = mode === 'poll' ? setInterval(changed, POLL_MS) : undefined
}

const sleep = async (ms: number, signal: AbortSignal): Promise<void> => await new Promise((resolve) => {
  const timer = setTimeout(resolve, ms)
  signal.addEventListener('abort', () => { clearTimeout(timer); resolve() }, { once: true })
})

/** Reads server-sent events from a fetch body: each message's `event` and `data`. */
async function * sse (body: ReadableStream<Uint8Array>): AsyncGenerator<{ event: string, data: string }> {
  const reader = body.pipeThrough(new TextDecoderStream() as ReadableWritablePair<string, Uint8Array>).getReader()
  let buf = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buf += value.replace(/\r\n?/g, '\n')
    for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
      const msg = { event: 'message', data: '' }
      for (const line of buf.slice(0, end).split('\n')) {
        const colon = line.indexOf(':')
        const field = colon < 0 ? line : line.slice(0, colon)
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
        if (field === 'event') msg.event = value
        else if (field === 'data') msg.data += (msg.data === '' ? '' : '\n') + value
      }
      buf = buf.slice(end + 2)
      if (msg.data !== '') yield msg
    }
  }
}

let following: AbortController | null = null
/**
 * Follows /api/events from now on, resuming after the last cursor when the stream drops
 * (polling meanwhile, retrying with backoff). A refusal (no event log, a role without
 * `events`) leaves the page polling.
 */
async function follow (): Promise<void> {
  following?.abort()
  const ctl = new AbortController()
  following = ctl
  let cursor = -1
  let failures = 0
  while (!ctl.signal.aborted) {
    try {
      const headers: Record<string, string> = token !== '' ? { authorization: `Bearer ${token}` } : {}
      const r = await fetch(`/api/events?cursor=${cursor}`, { headers, signal: ctl.signal, cache: 'no-store' })
      if (r.status === 401) { setLive('off'); return }
      if (!r.ok || r.body === null) throw new Error(`HTTP ${r.status}`)
      setLive('events')
      if (failures > 0) changed()
      failures = 0
      for await (const msg of sse(r.body)) {
        if (msg.event === 'refused') { setLive('poll'); return }
        const page = JSON.parse(msg.data) as { events: Json[], cursor: number }
        cursor = page.cursor
        recent.push(...page.events)
        recent.splice(0, Math.max(0, recent.length - RECENT))
        changed()
      }
    } catch {
      if (ctl.signal.aborted) return
    }
    setLive('poll')
    failures++
    await sleep(Math.min(30_000, 1000 * 2 ** Math.min(failures, 5)), ctl.signal)
  }
}

// Workers come and go without a task changing (their heartbeats are not in the events
// stream): the workers view alone also refreshes on a slow clock while the stream is live.
const WORKERS_REFRESH_MS = 5000
setInterval(() => { if (document.body.dataset.live === 'events' && location.hash === '#/workers') changed() }, WORKERS_REFRESH_MS)

window.addEventListener('hashchange', () => { void render() })
void render()
void follow()
