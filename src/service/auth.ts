import { createHash, timingSafeEqual } from 'node:crypto'

/**
 * Constant-time token check (B2): both sides are hashed first so neither the length
 * nor the content of the configured token leaks through timing.
 */
export function createTokenCheck (token: string | null): (candidate: unknown) => boolean {
  if (token === null) return () => true
  const expected = createHash('sha256').update(token, 'utf8').digest()
  return (candidate: unknown): boolean => {
    const given = createHash('sha256').update(typeof candidate === 'string' ? candidate : '', 'utf8').digest()
    return timingSafeEqual(expected, given)
  }
}
