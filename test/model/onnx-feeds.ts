/** What the ONNX tests hand onnxruntime: a batch of int64 ids as its input tensors. */
import * as ort from 'onnxruntime-node';

export interface OnnxBatch {
  inputIds: BigInt64Array;
  attentionMask: BigInt64Array;
  /** None: zeros (DistilBERT's fixtures have none). */
  tokenTypeIds?: BigInt64Array;
  batchSize: number;
  seqLen: number;
}

/** The session's inputs: DistilBERT's graph takes no token_type_ids. */
export function feeds(b: OnnxBatch, tokenTypes = true): Record<string, ort.Tensor> {
  const dims = [b.batchSize, b.seqLen];
  return {
    input_ids: new ort.Tensor('int64', b.inputIds, dims),
    attention_mask: new ort.Tensor('int64', b.attentionMask, dims),
    ...(tokenTypes ? { token_type_ids: new ort.Tensor('int64', b.tokenTypeIds ?? new BigInt64Array(b.batchSize * b.seqLen), dims) } : {}),
  };
}
