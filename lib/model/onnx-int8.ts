/**
 * The int8 linear of native/fast/quant.h (issue 16) in standard ONNX ops, for exportOnnx's `quantize: 'int8'`:
 *
 *   activations  per row (token) r, symmetric, as quant.h and our kernels do: amax = ReduceMax(|x|) over the
 *                features; inv = 127 / amax, xscale = amax / 127 (both 1 when amax is 0); xq = clip(round(x *
 *                inv), -127, 127) (ONNX Round rounds half to even, as nearbyint)
 *   product      MatMulInteger(xq + 128 as uint8, zero point 128; q int8 [in, out]) = sum_k xq[r][k] q[n][k],
 *                exact in int32
 *   dequantize   Cast to float, times wscale[n], times xscale[r], plus the bias
 *
 * Why not DynamicQuantizeLinear, what onnxruntime's own dynamic quantization writes: it quantizes the whole
 * tensor (one scale for every token of the batch, uint8 with a zero point), so a file made of it computes
 * something else than our int8 kernels, and its results change with what else is in the batch. The per-row
 * rule keeps parity: onnxruntime runs the integers our kernels run (the int32 sums are equal; the float steps
 * around them differ at most in rounding order). Why uint8 with zero point 128 and not int8 activations:
 * onnxruntime's fast x86 kernels (VNNI vpdpbusd) take unsigned activations times signed weights; its int8 x
 * int8 MatMulInteger was 8.4x slower than uint8 x int8 here (128 x 768 x 768, one thread, one run on a
 * loaded machine). Shifting by 128 and giving that as the zero point changes no sum.
 *
 * Why (acc * wscale) * xscale and not quant.h's acc * (xscale * wscale): onnxruntime's graph optimizer
 * (level 'extended' and up, 1.30) rewrites MatMulInteger -> Cast -> Mul(Mul(a_scale, b_scale)) into its
 * MatMulIntegerToFloat, which takes one activation scale for the whole tensor: with per-row scales its
 * results were wrong (0.68 off on values of about 2, checked with a 5 x 16 x 8 case at each level). The
 * other order is not rewritten; it differs from quant.h's by float32 rounding only (a few ulp of y).
 */
import type { Int8Weights } from './int8-weights';
import { GraphBuilder, transposeWeight } from './onnx-graph';
import { DataType } from './onnx-messages';

/** x [.., K] float -> (xq [.., K] uint8 holding xq + 128, xscale [.., 1] float), quant.h's activation rule. */
export function quantizeRows(g: GraphBuilder, x: string, name: string): { xq: string; xscale: string } {
  const amax = g.node('ReduceMax', `${name}/amax`, [g.node('Abs', `${name}/abs`, [x])], { axes: { ints: [-1] }, keepdims: { i: 1 } });
  // A row of zeros: amax -> 127 makes inv and xscale both exactly 1, as quant.h says.
  const safe = g.node('Where', `${name}/amax_or_127`, [g.node('Greater', `${name}/nonzero`, [amax, g.scalar(0)]), amax, g.scalar(127)]);
  const inv = g.node('Div', `${name}/inv_scale`, [g.scalar(127), safe]);
  const xscale = g.node('Div', `${name}/x_scale`, [safe, g.scalar(127)]);
  const rounded = g.node('Round', `${name}/round`, [g.node('Mul', `${name}/scaled`, [x, inv])]);
  const clipped = g.node('Clip', `${name}/clip`, [rounded, g.scalar(-127), g.scalar(127)]);
  const xq = g.node('Cast', `${name}/x_q`, [g.node('Add', `${name}/offset`, [clipped, g.scalar(128)])], { to: { i: DataType.UINT8 } });
  return { xq, xscale };
}

/**
 * y = x W^T + b for an int8 weight `w` ([out, in] with one scale per output channel) and a float bias [out],
 * by quant.h's rule; returns y's name (`output` names it as a graph output). The one place the export
 * writes a quantized linear: whatever gives the integers and scales (quantizing fp32 weights, or a model
 * already quantized) hands them here.
 */
export function int8Linear(g: GraphBuilder, x: string, name: string, w: Int8Weights, bias: Float32Array, output?: string): string {
  const { rows: N, cols: K } = w;
  const { xq, xscale } = quantizeRows(g, x, `${name}/quantize`);
  const q = g.init(`${name}.weight_q_t`, [K, N], transposeWeight(w.q, N, K));
  const acc = g.node('MatMulInteger', `${name}/matmul_integer`, [xq, q, g.uint8(128)]);
  const accf = g.node('Cast', `${name}/acc_float`, [acc], { to: { i: DataType.FLOAT } });
  const yw = g.node('Mul', `${name}/weight_scale`, [accf, g.init(`${name}.weight_scale`, [N], w.scale)]);
  const y = g.node('Mul', `${name}/x_scale`, [yw, xscale]);
  return g.node('Add', `${name}/add`, [y, g.init(`${name}.bias`, [N], bias)], {}, output);
}
