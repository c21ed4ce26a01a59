/**
 * int8 weight quantization in TypeScript, by exactly the rule native/fast/quant.h pins (issue 16), so that a
 * file written here (the int8 ONNX export) holds the same integers and scales as our own int8 kernels:
 *
 *   per channel: wscale[n] = max_k |w[n][k]| / 127; per tensor: one max over all of w; a row (or tensor) of
 *   zeros gets scale 1; q[n][k] = clamp(nearbyint(w[n][k] / wscale[n]), -127, 127), rounding half to even.
 *
 * Every step is a float32 operation there, so each is rounded to float32 here (Math.fround) before the next.
 */

/** The int8 form of a [rows, cols] row-major weight: q row-major like it, one scale per row (output channel). */
export interface Int8Weights {
  q: Int8Array;
  /** [rows]; per tensor, the one scale repeated, so that every consumer reads one layout. */
  scale: Float32Array;
  rows: number;
  cols: number;
}

/** C's nearbyint under the default rounding mode: to the nearest integer, ties to the even one (2.5 -> 2, -3.5 -> -4). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // ties go up (towards +inf): 2.5 -> 3, -2.5 -> -2
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** max |x| over [from, to), as float32 (exact: no arithmetic). */
function absMax(w: Float32Array, from: number, to: number): number {
  let m = 0;
  for (let i = from; i < to; i++) m = Math.max(m, Math.abs(w[i]));
  return m;
}

/**
 * Quantizes `w` ([rows, cols] row-major float32, an nn.Linear weight [out, in]) to int8, symmetric, per
 * output channel (default) or per tensor, by quant.h's rule.
 */
export function quantizeInt8(w: Float32Array, rows: number, cols: number, perChannel = true): Int8Weights {
  if (w.length !== rows * cols) throw new RangeError(`quantizeInt8: ${w.length} values for a [${rows}, ${cols}] weight`);
  const q = new Int8Array(rows * cols);
  const scale = new Float32Array(rows);
  const tensorMax = perChannel ? 0 : absMax(w, 0, w.length);
  for (let n = 0; n < rows; n++) {
    const amax = perChannel ? absMax(w, n * cols, (n + 1) * cols) : tensorMax;
    const s = amax > 0 ? Math.fround(amax / 127) : 1;
    scale[n] = s;
    for (let k = n * cols; k < (n + 1) * cols; k++) q[k] = Math.min(127, Math.max(-127, roundHalfEven(Math.fround(w[k] / s))));
  }
  return { q, scale, rows, cols };
}
