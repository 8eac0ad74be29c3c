/**
 * Who may talk to a service (README "Security"): the token's open mode, role tokens,
 * the peer allow list, the private-network swarm key and per-peer limits. Parsed here
 * like every other variable (config.md §2): a bad value is one line naming it, exit 2.
 */
import { aliasOf } from './env.js'
import type { Env, EnvReader } from './env.js'

export interface SecuritySettings {
  /** TOKEN was set explicitly empty: open service, no generated token (the original's mode). */
  readonly tokenOpen: boolean
}

/** True when TOKEN (either spelling) is present in the environment but empty. */
function explicitlyEmpty (env: Env, name: string): boolean {
  const values = [env[name], env[aliasOf(name) ?? '']].filter((v): v is string => v !== undefined)
  return values.length > 0 && values.every(v => v.trim() === '')
}

export function readSecurity (_r: EnvReader, env: Env, _p: string, tokenVar: string): SecuritySettings {
  return Object.freeze({ tokenOpen: explicitlyEmpty(env, tokenVar) })
}
