
import { nodeCrypto, asCrypto } from './node_modules/@chainsafe/libp2p-noise/dist/src/crypto/index.js'
import crypto from 'node:crypto'
const k = crypto.randomBytes(32), nonce = Buffer.alloc(12), ad = new Uint8Array(0)
for (const size of [200, 400]) {
  const pt = crypto.randomBytes(size)
  for (const [name, c] of [['wasm', asCrypto], ['node', nodeCrypto]]) {
    const ct = c.chaCha20Poly1305Encrypt(pt, nonce, ad, k)
    const N = 100000
    for (let i = 0; i < 10000; i++) c.chaCha20Poly1305Encrypt(pt, nonce, ad, k)
    let t = performance.now()
    for (let i = 0; i < N; i++) c.chaCha20Poly1305Encrypt(pt, nonce, ad, k)
    const e = (performance.now() - t) * 1000 / N
    t = performance.now()
    for (let i = 0; i < N; i++) c.chaCha20Poly1305Decrypt(ct.subarray ? ct.subarray() : ct, nonce, ad, k)
    const d = (performance.now() - t) * 1000 / N
    console.log(size, name, 'enc', e.toFixed(2), 'dec', d.toFixed(2), 'us')
  }
}
