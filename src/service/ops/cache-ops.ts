/** Cache ops (wire-protocol.md §6.2). Key validation and bounds live in the CacheStore (either backend). */
import { TaskQueueError } from '../../protocol/errors.js'
import { num, str } from '../../protocol/coerce.js'
import type { Envelope } from '../../protocol/coerce.js'
import type { CacheStore } from '../../store/cache-store.js'
import type { JsonValue } from '../../protocol/types.js'
import type { CallerInfo, Reply, ServiceContext } from '../context.js'
import { quotaPeerOf } from '../access.js'

function cacheOf (ctx: ServiceContext): CacheStore {
  if (!ctx.options.enableCache || ctx.cache === null) throw new TaskQueueError('cache_disabled')
  return ctx.cache
}

export async function cacheGet (env: Envelope, ctx: ServiceContext): Promise<Reply> {
  const entry = await cacheOf(ctx).get(str(env.key))
  return { ok: true, key: entry.key, hit: entry.hit, value: entry.value, expires_at: entry.expires_at }
}

export async function cacheHas (env: Envelope, ctx: ServiceContext): Promise<Reply> {
  const key = str(env.key)
  return { ok: true, key, hit: await cacheOf(ctx).has(key) }
}

export async function cacheSet (env: Envelope, ctx: ServiceContext, caller: CallerInfo): Promise<Reply> {
  const key = str(env.key)
  const value = (env.value === undefined ? null : env.value) as JsonValue
  const out = await cacheOf(ctx).set({ key, value, ttl_s: num(env.ttl_s, 0, -Infinity, Infinity), owner: quotaPeerOf(caller) })
  return { ok: true, key, expires_at: out.expires_at }
}

export async function cacheDelete (env: Envelope, ctx: ServiceContext): Promise<Reply> {
  const key = str(env.key)
  return { ok: true, key, deleted: await cacheOf(ctx).delete(key) }
}
