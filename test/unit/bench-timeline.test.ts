/**
 * The `timeline` bench section cuts each round trip at the socket events of three
 * processes (bench/timeline.ts). These cases pin down which events it picks, so the
 * printed steps mean what their names say.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cutRoundTrip } from '../../bench/timeline.js'
import { READ, WRITE } from '../../bench/timeline-probe.js'
import type { SocketEvent } from '../../bench/timeline-probe.js'

const CLIENT = 40001
const WORKER = 40002
const SERVICE = 9000

/** One round trip starting at 1000 µs; `tail` adds the previous round trip's leftovers. */
function lines (tail: boolean): { client: SocketEvent[], service: SocketEvent[], worker: SocketEvent[] } {
  const service: SocketEvent[] = [
    [1100, READ, SERVICE, CLIENT], // submit in
    [1400, WRITE, SERVICE, WORKER], // claimed task out
    [1450, WRITE, SERVICE, CLIENT], // submit reply
    [1700, READ, SERVICE, CLIENT], // wait in
    [1800, READ, SERVICE, WORKER], // complete + next claim in
    [2100, WRITE, SERVICE, CLIENT], // wait reply
    [2150, WRITE, SERVICE, WORKER] // complete reply
  ]
  const worker: SocketEvent[] = [
    [1500, READ, WORKER, SERVICE],
    [1650, WRITE, WORKER, SERVICE],
    [1750, WRITE, WORKER, SERVICE],
    [2200, READ, WORKER, SERVICE]
  ]
  if (tail) {
    // The previous complete's reply reaches the worker after the submit arrived: read, no write.
    service.unshift([1050, WRITE, SERVICE, WORKER])
    worker.unshift([1150, READ, WORKER, SERVICE])
    // A log line on a pipe (port 0) must not count as a connection.
    service.push([1420, WRITE, 0, 0])
  }
  const client: SocketEvent[] = [
    [1040, WRITE, CLIENT, SERVICE],
    [1500, READ, CLIENT, SERVICE],
    [1600, WRITE, CLIENT, SERVICE],
    [2200, READ, CLIENT, SERVICE]
  ]
  for (const l of [service, worker]) l.sort((a, b) => a[0] - b[0])
  return { client, service, worker }
}

const EXPECTED = [40, 60, 300, 100, 150, 150, 300, 150]

test('a round trip is cut into the eight steps between its socket events', () => {
  assert.deepEqual(cutRoundTrip(lines(false), CLIENT, 1000, 2250), EXPECTED)
})

test("the previous round trip's tail and pipe writes do not shift the steps", () => {
  assert.deepEqual(cutRoundTrip(lines(true), CLIENT, 1000, 2250), EXPECTED)
})

test('a round trip whose events do not line up is left out', () => {
  const l = lines(false)
  l.worker = l.worker.filter((e) => e[1] !== WRITE)
  assert.equal(cutRoundTrip(l, CLIENT, 1000, 2250), null)
})

test('a one-call round trip (submit with wait_s: no submit reply, no wait) is cut the same way', () => {
  const l = lines(false)
  l.service = l.service.filter((e) => e[0] !== 1450 && e[0] !== 1700)
  l.client = l.client.filter((e) => e[0] !== 1500 && e[0] !== 1600)
  assert.deepEqual(cutRoundTrip(l, CLIENT, 1000, 2250), EXPECTED)
})
