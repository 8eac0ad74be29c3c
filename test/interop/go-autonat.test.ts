/**
 * AutoNAT v1 against go-libp2p, both roles, in the network-namespace NAT topology
 * (helpers/reference-autonat.ts, shared with rust-autonat.test.ts).
 */
import { GO_PEER } from './helpers/reference-cases.js'
import { testAutonatV1 } from './helpers/reference-autonat.js'

testAutonatV1(GO_PEER)
