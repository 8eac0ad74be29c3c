/**
 * AutoNAT v1 against rust-libp2p (libp2p-autonat 0.15.0, v1), both roles, in the
 * network-namespace NAT topology (helpers/reference-autonat.ts, shared with go-autonat.test.ts).
 */
import { RUST_PEER } from './helpers/reference-cases.js'
import { testAutonatV1 } from './helpers/reference-autonat.js'

testAutonatV1(RUST_PEER)
