/**
 * Errors raised by blockprune carry a stable `code`, the same codes the native core uses:
 *
 * - `E_FILE_NOT_FOUND`  a file or directory is missing or unreadable
 * - `E_BAD_CHECKPOINT`  a weights file is corrupt, truncated or inconsistent
 * - `E_BAD_CONFIG`      config.json is invalid or disagrees with the weights
 * - `E_BAD_TOKENIZER`   tokenizer.json / vocab.txt is invalid
 * - `E_SHAPE`           a tensor's shape is not the expected one
 * - `E_MISSING_TENSOR` / `E_UNEXPECTED_TENSOR`  checkpoint and model disagree on which tensors exist
 * - `E_INVALID_ARG`     a bad argument (also thrown as TypeError / RangeError)
 * - `E_DISPOSED`        the model was disposed
 * - `E_NUMERIC`         a loss became NaN or infinite (no step was taken)
 * - `E_BAD_DATA`        a dataset file has a bad row (the message names file and line)
 * - `E_TORCH` / `E_NATIVE`  an error inside libtorch or the addon
 * - `E_NO_ADDON`        the native addon could not be loaded
 * - `E_DISTRIBUTED`     data-parallel training failed: a rendezvous timed out, a rank died or disagrees
 * - `E_UNSUPPORTED`     this build lacks the feature (no Gloo, no NCCL)
 * - `E_NO_SPACE`        the disk (or quota) is full: nothing was replaced, the previous files are intact
 * - `E_WRITE_FAILED`    a file could not be written for another reason (permissions, read-only file system,
 *                       a path that is a file where a directory is needed); the message names path and cause
 * - `E_BUSY`            a native call is running on this model; a synchronous read of its weights refuses
 *                       rather than read them while another thread changes them (await the call first, or
 *                       use the queued readStateDict())
 * - `E_RESUME_MISMATCH` a checkpoint was made by another run (seed, batch size, data, pruning plan, model,
 *                       world size differ); the message names the field
 * - `E_NOT_CACHED`      a Hugging Face hub id is not in the local cache and may not be downloaded (offline:
 *                       HF_HUB_OFFLINE=1 or { offline: true }, or the hub cannot be reached); the message names
 *                       the id, the revision, the cache folder searched and how to fill it
 * - `E_DOWNLOAD`        the hub refused a file (401/403: gated or private, a token is needed), answered
 *                       something that is not a hub answer, or sent a file of the wrong size (nothing of it is
 *                       placed in the cache); the message names the id, the file and the URL
 * - `E_BAD_PROFILE`     a latency profile file (latency-profile-BxS.json in a model directory) is not one
 *                       blockprune wrote; the message names it (delete it, or measure again with force)
 * - `E_ABORTED`         a generation was stopped by its caller (its onStep listener returned false: a stream
 *                       left early); what it had produced was already delivered step by step
 */
export type ErrorCode =
  | 'E_FILE_NOT_FOUND'
  | 'E_BAD_CHECKPOINT'
  | 'E_BAD_CONFIG'
  | 'E_BAD_TOKENIZER'
  | 'E_SHAPE'
  | 'E_MISSING_TENSOR'
  | 'E_UNEXPECTED_TENSOR'
  | 'E_INVALID_ARG'
  | 'E_DISPOSED'
  | 'E_NUMERIC'
  | 'E_BAD_DATA'
  | 'E_TORCH'
  | 'E_NATIVE'
  | 'E_NO_ADDON'
  | 'E_DISTRIBUTED'
  | 'E_UNSUPPORTED'
  | 'E_NO_SPACE'
  | 'E_WRITE_FAILED'
  | 'E_BUSY'
  | 'E_RESUME_MISMATCH'
  | 'E_NOT_CACHED'
  | 'E_DOWNLOAD'
  | 'E_BAD_PROFILE'
  | 'E_ABORTED';

export class BlockpruneError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BlockpruneError';
    this.code = code;
  }
}

/** A TypeError with `code: 'E_INVALID_ARG'`, worded like "Expected X for NAME but received Y". */
export function invalidArg(name: string, expected: string, received: unknown): TypeError & { code: ErrorCode } {
  const err = new TypeError(`Expected ${expected} for ${name} but received ${describeValue(received)}`) as TypeError & {
    code: ErrorCode;
  };
  err.code = 'E_INVALID_ARG';
  return err;
}

export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return 'an Array';
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'number') return `the number ${v}`;
  return `a ${typeof v}`;
}
