/**
 * Interop with go-libp2p, the reference implementation (pinned in test/interop/go/go.mod):
 * Kademlia provider records on a private protocol id and circuit relay v2, each in both
 * directions, between real processes on loopback (helpers/reference-cases.ts, shared with
 * rust.test.ts).
 */
import { GO_PEER, describeCircuitRelay, describeKadProviders } from './helpers/reference-cases.js'

describeKadProviders(GO_PEER)
describeCircuitRelay(GO_PEER)
