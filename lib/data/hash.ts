/**
 * Small deterministic integer hashing and a seeded generator, identical on every machine: all
 * arithmetic is 32-bit (Math.imul, >>>), so no floating-point rounding differs between platforms.
 */

/** A 32-bit avalanche finalizer (the "lowbias32" constants): every input bit flips ~half the output bits. */
export function mix32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d);
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b);
  x = (x ^ (x >>> 16)) >>> 0;
  return x;
}

const TWO_32 = 4294967296;

/** Low and high 32-bit words of a non-negative safe integer. */
function words(n: number): [number, number] {
  return [n >>> 0, Math.floor(n / TWO_32) >>> 0];
}

/**
 * A 32-bit hash of (seed, index) for non-negative safe integers: the words are absorbed one by one,
 * each step mixing fully, so nearby seeds and nearby indices give unrelated values.
 */
export function hashIndex(seed: number, index: number): number {
  const [s0, s1] = words(seed);
  const [i0, i1] = words(index);
  let h = mix32(s0 ^ 0x9e3779b9);
  h = mix32((h + s1 + 0x632be59b) >>> 0);
  h = mix32((h ^ i0) >>> 0);
  h = mix32((h + i1 + 0x85ebca6b) >>> 0);
  return h;
}

/** hashIndex scaled to [0, 1). */
export function unitHash(seed: number, index: number): number {
  return hashIndex(seed, index) / TWO_32;
}

/**
 * A seeded generator of uniform 32-bit integers (a Weyl sequence through mix32, splitmix-style):
 * the same stream for the same seed, everywhere.
 */
export function seededUint32(seed: number): () => number {
  const [s0, s1] = words(seed);
  let state = mix32((s0 ^ mix32((s1 + 0x7f4a7c15) >>> 0)) >>> 0);
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    return mix32(state);
  };
}

/** A uniform integer in [0, n) for 0 < n <= 2^32, without modulo bias (rejection sampling). */
export function randomBelow(next: () => number, n: number): number {
  if (n <= 1) return 0;
  const limit = TWO_32 - (TWO_32 % n);
  for (;;) {
    const r = next();
    if (r < limit) return r % n;
  }
}
