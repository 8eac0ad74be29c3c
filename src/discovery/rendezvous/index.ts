/**
 * libp2p rendezvous (`/rendezvous/1.0.0`, discovery.md §5): a point service, a
 * registrar service for TaskQueue services, the chain's client-side discoverer, and
 * the low-level client requests they share.
 */
export { RENDEZVOUS_PROTOCOL, MAX_MESSAGE_BYTES, MessageType, ResponseStatus, RendezvousProtocolError, statusName, encodeMessage, decodeMessage } from './proto.js'
export type { RendezvousMessage, RegisterMessage, RegisterResponseMessage, UnregisterMessage, DiscoverMessage, DiscoverResponseMessage, ResponseStatusName } from './proto.js'
export { encodeLengthPrefixed, readLengthPrefixed, readMessage, writeMessage } from './wire.js'
export { InvalidPeerRecordError, verifySignedPeerRecord, sealPeerRecord, recordAddresses, peerIdOfMultiaddr } from './record.js'
export type { VerifiedPeerRecord } from './record.js'
export { rendezvousPoint, isValidNamespace, DEFAULT_TTL_S, MIN_TTL_S, MAX_TTL_S, MAX_NAMESPACE_BYTES, DEFAULT_DISCOVER_LIMIT, MAX_DISCOVER_LIMIT } from './point.js'
export type { RendezvousPoint, RendezvousPointInit, RendezvousPointStats, RendezvousPointComponents } from './point.js'
export { RendezvousError, register, unregister, discover, discoverMany, dialerFromComponents } from './client.js'
export type { RendezvousDialer, RendezvousErrorCode, DiscoveredRegistration, DiscoverPage, DiscoverOptions, DiscoverManyOptions } from './client.js'
export { rendezvousRegistrar } from './registrar.js'
export type { RendezvousRegistrar, RendezvousRegistrarInit, RendezvousRegistrarComponents, RegistrationStatus } from './registrar.js'
export { rendezvousDiscoverer } from './discoverer.js'
export type { RendezvousDiscovererInit } from './discoverer.js'
