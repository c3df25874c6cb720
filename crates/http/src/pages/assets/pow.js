// The waiting room's proof of work (hashcash, issue 12): find a nonce such that
// SHA-256("<challenge>:<nonce>") starts with `difficulty` zero bits, the nonce
// counting up from 0 in decimal, as the server checks it (waiting_room.rs,
// `pow_ok`). The hashing is WebCrypto's, never our own.
//
// This file is both a module and a module Web Worker: queue.js runs it as a worker
// so the page stays responsive (expected work 2^difficulty hashes), and imports
// `solve` to run it on the page itself where workers are not available; `solve`
// awaits each batch, so even there the page is never blocked for long.

const enc = new TextEncoder();
/** Hashes in flight at once: WebCrypto's promises cost more than the hash. */
const BATCH = 512;

function zeroBits(bytes) {
  let n = 0;
  for (const b of bytes) {
    if (b === 0) { n += 8; continue; }
    return n + Math.clz32(b) - 24;
  }
  return n;
}

/** The nonce (a decimal string); `progress(tried)` after each batch. */
export async function solve(challenge, difficulty, progress = () => {}) {
  if (!globalThis.crypto || !crypto.subtle) {
    // WebCrypto is only given to secure pages (https, or localhost).
    throw new Error('no_webcrypto');
  }
  const prefix = `${challenge}:`;
  for (let n = 0; ; n += BATCH) {
    const batch = [];
    for (let k = 0; k < BATCH; k++) batch.push(crypto.subtle.digest('SHA-256', enc.encode(prefix + (n + k))));
    const hashes = await Promise.all(batch);
    for (let k = 0; k < BATCH; k++) {
      if (zeroBits(new Uint8Array(hashes[k])) >= difficulty) return String(n + k);
    }
    progress(n + BATCH);
  }
}

// As a worker: {challenge, difficulty} in; {tried} as it goes, then {nonce} or {error}.
if (typeof WorkerGlobalScope !== 'undefined' && self instanceof WorkerGlobalScope) {
  self.onmessage = async (e) => {
    const { challenge, difficulty } = e.data;
    try {
      const nonce = await solve(challenge, difficulty, (tried) => self.postMessage({ tried }));
      self.postMessage({ nonce });
    } catch (err) {
      self.postMessage({ error: String(err && err.message || err) });
    }
  };
}
