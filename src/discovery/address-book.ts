/**
 * The last good addresses per peer id, in memory and in a small JSON file, so that a
 * client given only `--peer-id` (or a repeated CLI call) does not rediscover.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { isPlainObject } from '../protocol/json.js'
import { withPeerId } from '../node/addresses.js'

interface Entry {
  addrs: string[]
  at: number
}

const MAX_ENTRIES = 256
/** Keys of remembered winners; peer ids never contain a space. */
const WINNER_PREFIX = 'winner '
/** Remembered addresses older than this are not trusted. */
const MAX_AGE_S = 7 * 24 * 3600

export class AddressBook {
  private readonly entries = new Map<string, Entry>()
  private loaded = false

  constructor (private readonly path: string | null) {}

  get (peerId: string): string[] | null {
    this.load()
    const e = this.entries.get(peerId)
    if (e === undefined || Date.now() / 1000 - e.at > MAX_AGE_S) return null
    return e.addrs
  }

  remember (peerId: string, addrs: string[]): void {
    this.load()
    const prev = this.entries.get(peerId)
    const now = Date.now() / 1000
    const unchanged = prev !== undefined && prev.addrs.join('\n') === addrs.join('\n') && now - prev.at < 3600
    this.entries.delete(peerId)
    this.entries.set(peerId, { addrs, at: unchanged ? prev.at : now })
    while (this.entries.size > MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value as string)
    if (!unchanged) this.save()
  }

  /**
   * The service the chain last chose for a namespace, when a network mechanism found it:
   * the next process tries it first instead of searching again (an announce file is
   * read in no time, so its winners are not worth remembering).
   */
  rememberWinner (namespace: string, peerId: string, addrs: string[]): void {
    this.remember(`${WINNER_PREFIX}${namespace}`, addrs.map((a) => withPeerId(a, peerId)))
  }

  lastWinner (namespace: string, maxAgeS: number): string[] | null {
    this.load()
    const e = this.entries.get(`${WINNER_PREFIX}${namespace}`)
    if (e === undefined || Date.now() / 1000 - e.at > maxAgeS) return null
    return e.addrs
  }

  forgetWinner (namespace: string): void {
    this.forget(`${WINNER_PREFIX}${namespace}`)
  }

  forget (peerId: string): void {
    this.load()
    if (this.entries.delete(peerId)) this.save()
  }

  private load (): void {
    if (this.loaded) return
    this.loaded = true
    if (this.path === null) return
    try {
      const data: unknown = JSON.parse(readFileSync(this.path, 'utf8'))
      if (!isPlainObject(data)) return
      for (const [peerId, value] of Object.entries(data)) {
        if (isPlainObject(value) && Array.isArray(value.addrs) && typeof value.at === 'number') {
          this.entries.set(peerId, { addrs: value.addrs.filter((a): a is string => typeof a === 'string'), at: value.at })
        }
      }
    } catch {
      // A missing or corrupt cache only costs a rediscovery.
    }
  }

  private save (): void {
    if (this.path === null) return
    try {
      mkdirSync(dirname(this.path), { recursive: true })
      const tmp = `${this.path}.${process.pid}.tmp`
      writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.entries)))
      renameSync(tmp, this.path)
    } catch {
      // Best effort: the cache is an optimisation.
    }
  }
}
