/** Cache ops (wire-protocol.md §6.2). Key validation and bounds live in CacheStore. */
import { TaskQueueError } from '../../protocol/errors.js'
import { num, str } from '../../protocol/coerce.js'
import type { Envelope } from '../../protocol/coerce.js'
import type { CacheStore } from '../../store/cache.js'
import type { JsonValue } from '../../protocol/types.js'
import type { Reply, ServiceContext } from '../context.js'

function cacheOf (ctx: ServiceContext): CacheStore {
  if (!ctx.options.enableCache || ctx.cache === null) throw new TaskQueueError('cache_disabled')
  return ctx.cache
}

export function cacheGet (env: Envelope, ctx: ServiceContext): Reply {
  const entry = cacheOf(ctx).get(str(env.key))
  return { ok: true, key: entry.key, hit: entry.hit, value: entry.value, expires_at: entry.expires_at }
}

export function cacheHas (env: Envelope, ctx: ServiceContext): Reply {
  const key = str(env.key)
  return { ok: true, key, hit: cacheOf(ctx).has(key) }
}

export function cacheSet (env: Envelope, ctx: ServiceContext): Reply {
  const key = str(env.key)
  const value = (env.value === undefined ? null : env.value) as JsonValue
  const out = cacheOf(ctx).set(key, value, num(env.ttl_s, 0, -Infinity, Infinity))
  return { ok: true, key, expires_at: out.expires_at }
}

export function cacheDelete (env: Envelope, ctx: ServiceContext): Reply {
  const key = str(env.key)
  return { ok: true, key, deleted: cacheOf(ctx).delete(key) }
}
