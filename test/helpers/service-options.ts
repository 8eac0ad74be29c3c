/** ServiceOptions for in-process service tests: no auth, tools or cache; generous limits. */
import type { ServiceOptions } from '../../src/service/context.js'

export function testServiceOptions (idleTimeoutMs = 60_000): ServiceOptions {
  return {
    token: null,
    enableTools: false,
    enableCache: false,
    enableLegacy: false,
    session: '',
    namespace: 'test',
    leaseS: 300,
    waitMaxS: 300,
    cacheMaxValueBytes: 1024,
    mcp: { maxFrameBytes: 1 << 20, maxFrames: 128, rateCapacity: 128, rateRefillPerSec: 128, idleTimeoutMs }
  }
}
