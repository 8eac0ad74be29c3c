/**
 * The HTTP listener (issue 22; HTTP_PORT, off by default; HTTP_HOST, 127.0.0.1 by
 * default): `/metrics` (Prometheus text format), `/healthz`, `/readyz`, and whatever
 * further routes are mounted (the dashboard). A Startable, like every long-lived part of
 * the service: `start` listens, `stop` closes every connection and the socket.
 *
 * Auth is the service's own token check (service/access.ts): with a token set, every data
 * request needs it (`Authorization: Bearer <token>`); `/healthz` and `/readyz` carry no
 * data and stay open for load balancers and supervisors.
 */
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'
import { ListenError } from '../node/listen.js'
import { isLoopbackHost } from '../node/service-token.js'
import type { Logger } from '../logger.js'

export interface HttpRequest {
  req: IncomingMessage
  res: ServerResponse
  url: URL
}

/** Answers a request it owns (returns true), or leaves it to the next route. */
export type HttpRoute = (r: HttpRequest) => boolean | Promise<boolean>

export interface HttpServiceInit {
  host: string
  port: number
  /** HTTP_HOST was set explicitly (a non-loopback host without a token is then allowed, with a warning). */
  hostExplicit: boolean
  /** The service's own check (AccessControl): true when a candidate token may see data. */
  tokenOk: (candidate: unknown) => boolean
  /** Whether the service requires any token at all. */
  tokenRequired: boolean
  registry: Registry
  ready: () => boolean
  routes?: HttpRoute[]
  logger: Logger
}

export function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' })
  res.end(text)
}

/** The token a request carries: `Authorization: Bearer …`, or `?token=` (for a link that opens the dashboard). */
export function requestToken (req: IncomingMessage, url: URL): string | undefined {
  const auth = req.headers.authorization
  if (typeof auth === 'string' && auth.startsWith('Bearer ')) return auth.slice(7).trim()
  return url.searchParams.get('token') ?? undefined
}

export class HttpService {
  private server: Server | null = null
  private boundPort = 0

  constructor (private readonly init: HttpServiceInit) {}

  /** `http://host:port`, once listening. */
  get url (): string {
    const host = this.init.host.includes(':') ? `[${this.init.host}]` : this.init.host
    return `http://${host}:${this.boundPort}`
  }

  /** True when the request may see data (no token configured, or the right one given). */
  authorized (r: HttpRequest): boolean {
    return this.init.tokenOk(requestToken(r.req, r.url))
  }

  async start (): Promise<void> {
    const { host, port, tokenRequired, hostExplicit } = this.init
    if (!tokenRequired && !isLoopbackHost(host)) {
      // HTTP_HOST must be explicit to get here: the default is 127.0.0.1.
      if (!hostExplicit) throw new ListenError(`HTTP_HOST ${host} is not loopback and no TOKEN is set: set a TOKEN, or HTTP_HOST explicitly`)
      this.init.logger.warn(`HTTP listener on ${host} without a TOKEN: anyone who reaches port ${port} sees the queue and can act on it`)
    }
    const server = createServer((req, res) => { void this.handle(req, res) })
    server.keepAliveTimeout = 5000
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(new ListenError(err.code === 'EADDRINUSE'
          ? `HTTP port ${port} is already in use on ${host}: choose another with HTTP_PORT (IPFS_ACCELERATE_PY_TASK_P2P_HTTP_PORT)`
          : `cannot listen for HTTP on ${host}:${port}: ${err.code ?? err.message}`, { cause: err }))
      })
      server.listen(port, host, () => resolve())
    })
    this.boundPort = (server.address() as AddressInfo).port
    this.server = server
  }

  async stop (): Promise<void> {
    const server = this.server
    this.server = null
    if (server === null) return
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const r: HttpRequest = { req, res, url }
    try {
      if (url.pathname === '/healthz') return sendJson(res, 200, { ok: true })
      if (url.pathname === '/readyz') return this.init.ready() ? sendJson(res, 200, { ok: true }) : sendJson(res, 503, { ok: false, error: 'not_ready' })
      if (url.pathname === '/metrics') {
        if (!this.authorized(r)) return sendJson(res, 401, { ok: false, error: 'unauthorized' })
        const text = await this.init.registry.metrics()
        res.writeHead(200, { 'content-type': this.init.registry.contentType })
        res.end(text)
        return
      }
      for (const route of this.init.routes ?? []) if (await route(r)) return
      sendJson(res, 404, { ok: false, error: 'not_found' })
    } catch (err) {
      this.init.logger.warn({ err }, `HTTP ${req.method ?? ''} ${url.pathname} failed`)
      if (!res.headersSent) sendJson(res, 500, { ok: false, error: 'internal_error' })
      else res.destroy()
    }
  }
}
