/**
 * The dashboard (issue 22) on the HTTP listener: the built page (Vite, `dist/dashboard`,
 * shipped in the package) at `/`, and its data and actions at `/api/*`.
 *
 * Every data request and action goes through the service's own dispatcher with the token
 * the browser sent (`Authorization: Bearer …`), so the dashboard is exactly as authorized
 * as a p2p-rpc call: the same token check, the same ops, the same replies. The page
 * itself carries no data and is served without a token (it asks for one). It follows
 * the ★ `events` stream (`/api/events`, server-sent events) and polls only without it.
 */
import { readFile } from 'node:fs/promises'
import { extname, join, normalize, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { HttpRoute, HttpRequest } from './http-service.js'
import { requestToken, sendJson } from './http-service.js'
import type { TaskQueueService } from './service.js'
import type { Settings } from '../config/index.js'
import { checkPeers, serviceReport } from '../discovery/doctor-report.js'
import type { DoctorReport } from '../discovery/doctor-report.js'
import type { PeerCheck } from '../nat/diagnose.js'
import { isPlainObject } from '../protocol/json.js'
import type { ConnectionKind } from '../nat/connection-kind.js'

/** dist/src/service/dashboard.js → dist/dashboard */
const ASSETS = fileURLToPath(new URL('../../dashboard/', import.meta.url))

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json'
}

/** The ops the dashboard may send: reads, and the operator's actions. */
const DASHBOARD_OPS = new Set(['status', 'list', 'get', 'cancel', 'retry', 'pause', 'resume', 'purge'])

/**
 * The caller every dashboard request is dispatched as: no libp2p peer (the browser talks
 * to the node's own HTTP listener), so the allow list and per-peer limits do not apply;
 * the token the browser sent and its role do.
 */
const DASHBOARD_CALLER = { remotePeerId: 'dashboard', via: 'http' } as const

/** How long one `events` long-poll of the stream waits; an idle stream sends a comment this often. */
const EVENTS_WAIT_S = 15

async function readBody (r: HttpRequest, limit = 65536): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of r.req) {
    size += (chunk as Buffer).length
    if (size > limit) throw new Error('body too large')
    chunks.push(chunk as Buffer)
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}')
}

/** After a message, the stream gathers changes this long before the next one. */
const STREAM_BATCH_MS = 200

async function pause (ms: number, signal: AbortSignal): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms)
    function done (): void { clearTimeout(timer); signal.removeEventListener('abort', done); resolve() }
    signal.addEventListener('abort', done, { once: true })
  })
}

/** Aborts when the browser goes away (the response closes). */
function closedSignal (r: HttpRequest): AbortSignal {
  const abort = new AbortController()
  r.res.once('close', () => abort.abort())
  return abort.signal
}

/**
 * `GET /api/events`: the ★ `events` stream as server-sent events, so the page re-renders
 * when the queue changes instead of polling. Each message is one page of the service's
 * own `events` op (`id:` its cursor, `data:` `{events, cursor, gap}`), dispatched with the
 * browser's token like every other request, so the same checks apply; a reconnecting
 * browser resumes after `Last-Event-ID` (or `?cursor=`; default -1, from now). An op
 * refusal (`events_disabled`, `forbidden`, …) is sent as `event: refused` and ends the
 * stream; the page then falls back to polling.
 */
async function streamEvents (service: TaskQueueService, r: HttpRequest, token: string | undefined): Promise<void> {
  const resume = r.req.headers['last-event-id'] ?? r.url.searchParams.get('cursor') ?? '-1'
  let cursor = Number(resume)
  if (!Number.isSafeInteger(cursor) || cursor < -1) cursor = -1
  const signal = closedSignal(r)
  r.res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' })
  // The browser retries a dropped stream after 2 s.
  r.res.write('retry: 2000\n\n')
  while (!signal.aborted) {
    const reply = await service.dispatch({ op: 'events', cursor, limit: 1000, wait_s: EVENTS_WAIT_S, token }, { ...DASHBOARD_CALLER, signal })
    if (signal.aborted) break
    if (reply.error === 'rate_limited') { await pause(1000, signal); continue }
    if (reply.ok !== true) {
      r.res.end(`event: refused\ndata: ${JSON.stringify({ error: reply.error, detail: reply.detail })}\n\n`)
      return
    }
    const events = reply.events as unknown[]
    cursor = Number(reply.cursor)
    if (events.length > 0 || reply.gap === true) {
      r.res.write(`id: ${cursor}\ndata: ${JSON.stringify({ events, cursor, gap: reply.gap === true })}\n\n`)
      // A busy queue: at most a few messages (and page renders) a second, each with more in it.
      if (reply.more !== true) await pause(STREAM_BATCH_MS, signal)
    } else r.res.write(': idle\n\n')
    // A closing service answers at once with nothing: stop rather than spin.
    if (events.length === 0 && service.context.events.closed) break
  }
  r.res.end()
}

/** The doctor's report of this service from its own `status --detail`. */
export type SelfDoctor = (status: Record<string, unknown>) => Promise<DoctorReport>

/** Configured peers are dialled again for the doctor at most this often. */
const PEER_CHECK_TTL_MS = 30_000

/**
 * The service-side doctor run from inside the service (the dashboard's verdict): the same
 * report as `taskqueue-p2p doctor`, with this process as the running service and its
 * configured peers checked from a throw-away node (kept for 30 s, one check at a time).
 */
export function selfDoctor (s: Settings, self: () => { peerId: string, listen: string[], port: number }): SelfDoctor {
  let checked: { at: number, peers: Promise<PeerCheck[]> } | null = null
  return async (status) => {
    if (checked === null || Date.now() - checked.at > PEER_CHECK_TTL_MS) checked = { at: Date.now(), peers: checkPeers(s, 5000) }
    return serviceReport(s, { running: true, status, statusError: '', ...self(), peers: await checked.peers })
  }
}

export interface DashboardOptions {
  /** `GET /api/doctor`: the doctor's verdict on this service (absent: 404). */
  doctor?: SelfDoctor
  /** `GET /api/peers`: the peers connected now and how (a remote worker's direct or relayed). */
  connections?: () => Array<{ peer_id: string, connection: ConnectionKind }>
}

export function dashboardRoutes (service: TaskQueueService, authorized: (r: HttpRequest) => boolean, options: DashboardOptions = {}): HttpRoute[] {
  const api: HttpRoute = async (r) => {
    if (!r.url.pathname.startsWith('/api/')) return false
    if (!authorized(r)) { sendJson(r.res, 401, { ok: false, error: 'unauthorized' }); return true }
    const token = requestToken(r.req, r.url)
    if (r.url.pathname === '/api/events' && r.req.method === 'GET') {
      await streamEvents(service, r, token)
      return true
    }
    if (r.url.pathname === '/api/peers' && r.req.method === 'GET' && options.connections !== undefined) {
      sendJson(r.res, 200, { ok: true, peers: options.connections() })
      return true
    }
    if (r.url.pathname === '/api/doctor' && r.req.method === 'GET' && options.doctor !== undefined) {
      // Its facts come from the status op, with the browser's token like every request.
      const status = await service.dispatch({ op: 'status', detail: true, token }, { ...DASHBOARD_CALLER, signal: closedSignal(r) })
      if (status.ok !== true) sendJson(r.res, 200, status)
      else sendJson(r.res, 200, { ok: true, report: await options.doctor(status) })
      return true
    }
    if (r.url.pathname === '/api/counts' && r.req.method === 'GET') {
      const store = service.context.store
      sendJson(r.res, 200, { ok: true, at: Date.now() / 1000, counts: await store.statusTypeCounts(), oldest_queued_age_s: await store.oldestQueuedAgeS() })
      return true
    }
    if (r.url.pathname === '/api/op' && r.req.method === 'POST') {
      let body: unknown
      try {
        body = await readBody(r)
      } catch {
        sendJson(r.res, 400, { ok: false, error: 'invalid_params', detail: 'the body must be one JSON object' })
        return true
      }
      const env = isPlainObject(body) ? body : {}
      if (typeof env.op !== 'string' || !DASHBOARD_OPS.has(env.op)) {
        sendJson(r.res, 400, { ok: false, error: 'invalid_params', detail: `op must be one of ${[...DASHBOARD_OPS].join(', ')}` })
        return true
      }
      // The service's own token check, on the token the browser sent.
      const reply = await service.dispatch({ ...env, token }, { ...DASHBOARD_CALLER, signal: closedSignal(r) })
      sendJson(r.res, 200, reply)
      return true
    }
    sendJson(r.res, 404, { ok: false, error: 'not_found' })
    return true
  }

  const assets: HttpRoute = async (r) => {
    if (r.req.method !== 'GET') return false
    const path = r.url.pathname === '/' ? '/index.html' : r.url.pathname
    const file = normalize(join(ASSETS, path))
    if (!file.startsWith(ASSETS.endsWith(sep) ? ASSETS : ASSETS + sep)) return false
    let data: Buffer
    try {
      data = await readFile(file)
    } catch {
      if (path === '/index.html') {
        sendJson(r.res, 503, { ok: false, error: 'dashboard_not_built', detail: 'run npm run build' })
        return true
      }
      return false
    }
    r.res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'cache-control': path === '/index.html' ? 'no-cache' : 'public, max-age=31536000, immutable',
      'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'",
      'x-content-type-options': 'nosniff'
    })
    r.res.end(data)
    return true
  }
  return [api, assets]
}
