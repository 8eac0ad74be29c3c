/**
 * The service's announce file kept current: written once the node listens (so a
 * client that finds it can dial it), rewritten whenever our addresses change, removed
 * at stop if it still names us. A libp2p service (`announceWriter(init)`).
 */
import type { Libp2pEvents, Startable, TypedEventTarget } from '@libp2p/interface'
import type { AddressManager } from '@libp2p/interface-internal'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from '../logger.js'
import { removeAnnounceFileIfOurs, writeAnnounceFile } from './announce-file.js'
import type { AnnounceInfo } from './announce-file.js'
import { pathStep } from '../node/startup-errors.js'

export interface AnnounceWriterComponents {
  events: TypedEventTarget<Libp2pEvents>
  addressManager: Pick<AddressManager, 'getAddresses'>
}

export interface AnnounceWriterInit {
  path: string
  peerId: string
  /** The file's contents for the node's current addresses. */
  info: (addrs: Multiaddr[]) => AnnounceInfo
  logger: Logger
}

export class AnnounceWriter implements Startable {
  private listening: Promise<void> = Promise.resolve()
  private heard: () => void = () => {}
  private started = false
  /** Until the first write (in afterStart), address events only wake it: its failure fails the start. */
  private written = false

  constructor (private readonly components: AnnounceWriterComponents, private readonly init: AnnounceWriterInit) {}

  readonly [Symbol.toStringTag] = 'taskqueue-p2p/announce-writer'

  start (): void {
    this.started = true
    this.written = false
    this.components.events.addEventListener('transport:listening', this.onUpdate)
    this.components.events.addEventListener('self:peer:update', this.onUpdate)
  }

  /**
   * Listening starts in the transport manager's afterStart, next to this one: the first
   * write waits for it, and a failing write fails the node's start (readiness is honest).
   */
  async afterStart (): Promise<void> {
    // transport:listening can come before the address manager has an address (seen
    // with the TCP listener up and no address yet): wait until there is one.
    while (this.started && this.components.addressManager.getAddresses().length === 0) {
      this.listening = new Promise((resolve) => { this.heard = resolve })
      await this.listening
    }
    if (!this.started) return
    await pathStep('announce file (ANNOUNCE_FILE)', this.init.path, () => { this.write() })
    this.written = true
  }

  stop (): void {
    this.started = false
    this.heard()
    this.components.events.removeEventListener('transport:listening', this.onUpdate)
    this.components.events.removeEventListener('self:peer:update', this.onUpdate)
    removeAnnounceFileIfOurs(this.init.path, this.init.peerId)
  }

  private write (): void {
    const addrs = this.components.addressManager.getAddresses()
    if (addrs.length > 0) writeAnnounceFile(this.init.path, this.init.info(addrs))
  }

  private readonly onUpdate = (): void => {
    this.heard()
    if (!this.written) return
    try {
      this.write()
    } catch (err) {
      this.init.logger.warn({ err }, 'rewriting the announce file failed')
    }
  }
}

export function announceWriter (init: AnnounceWriterInit): (components: AnnounceWriterComponents) => AnnounceWriter {
  return (components) => new AnnounceWriter(components, init)
}
