/** Seeded randomness: a small PRNG, shuffling, and the per-epoch permutation datasets batch in. */
import { invalidArg } from '../runtime/errors';

/** mulberry32: a small, fast, seeded PRNG. Returns a function giving floats in [0, 1). */
export function rng(seed: number): () => number {
  if (typeof seed !== 'number' || !Number.isFinite(seed)) throw invalidArg('seed', 'a finite number', seed);
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** In-place Fisher–Yates shuffle of an array or typed array; returns it. */
export function shuffle<A extends { length: number; [index: number]: unknown }>(array: A, random: () => number = Math.random): A {
  for (let i = array.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = array[i];
    array[i] = array[j];
    array[j] = tmp;
  }
  return array;
}

/** A 32-bit seed for (seed, epoch): murmur3's finalizer over a golden-ratio combination. */
export function epochSeed(seed: number, epoch: number): number {
  let h = (Math.trunc(seed) ^ Math.imul(Math.trunc(epoch) + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The permutation of 0..n-1 used for (seed, epoch). */
export function permutation(n: number, seed: number, epoch = 0): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return shuffle(p, rng(epochSeed(seed, epoch)));
}
