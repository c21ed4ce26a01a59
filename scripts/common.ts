/**
 * What the benchmark scripts share: their command line (node:util parseArgs through lib/cli/flags.ts, as
 * `blockprune` reads its own), the training geometries, and where ../shared is.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { BertConfigJson } from '../lib/model/model';
import { BERT_BASE } from '../lib/cli/bert-base';
import { exitWithError, FlagSpec, FlagValues, parseFlags, usageChecked, UsageError } from '../lib/cli/flags';

/**
 * ../shared beside the checkout (or BLOCKPRUNE_SHARED): the first `shared/` found walking up from here that
 * holds one of `marks` (default data/ or fixtures/); undefined when absent.
 */
export function sharedDir(marks: readonly string[] = ['data', 'fixtures']): string | undefined {
  if (process.env.BLOCKPRUNE_SHARED) return resolve(process.env.BLOCKPRUNE_SHARED);
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'shared');
    if (marks.some((m) => existsSync(join(candidate, m)))) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}

/** The training benchmarks' geometries: hidden 256 / 4 layers, and bert-base. */
export const TRAIN_GEOMETRIES: Record<string, BertConfigJson> = {
  small: { ...BERT_BASE, hidden_size: 256, num_hidden_layers: 4, num_attention_heads: 4, intermediate_size: 1024 },
  base: BERT_BASE,
};

/**
 * A script's command line, read and checked by `read` before any work: --help prints the usage and exits 0;
 * an unknown flag, a positional or a bad value prints one line naming it and the usage, and exits 2, as
 * `blockprune` does; a place that cannot be written exits 1 with its code.
 */
export function scriptFlags<T>(script: string, usage: string, spec: FlagSpec, read: (values: FlagValues) => T): T {
  try {
    const { values, positionals } = parseFlags(process.argv.slice(2), spec, script);
    if (values.help) {
      console.log(usage);
      process.exit(0);
    }
    if (positionals.length) throw new UsageError(`${script} takes options only, got ${positionals.join(' ')}`);
    return usageChecked(() => read(values));
  } catch (e) {
    return exitWithError(script, e, () => usage);
  }
}

/** Runs a script's main; a failure prints `SCRIPT: [CODE] message` and exits 1, as `blockprune` does. */
export function runScript(script: string, main: () => Promise<void>): void {
  main().catch((e) => exitWithError(script, e, () => ''));
}

/** t5-small's geometry (its config.json as 4.4.2 saves it, the fields our loader reads). */
export const T5_SMALL = {
  model_type: 't5',
  architectures: ['T5ForConditionalGeneration'],
  vocab_size: 32128,
  d_model: 512,
  d_kv: 64,
  d_ff: 2048,
  num_layers: 6,
  num_decoder_layers: 6,
  num_heads: 8,
  relative_attention_num_buckets: 32,
  feed_forward_proj: 'relu',
  pad_token_id: 0,
  eos_token_id: 1,
  decoder_start_token_id: 0,
};

/** bart-base's geometry (BartConfig as facebook/bart-base has it, without forced tokens: benchmarks decode a fixed count). */
export const BART_BASE = {
  model_type: 'bart',
  architectures: ['BartForConditionalGeneration'],
  vocab_size: 50265,
  d_model: 768,
  encoder_layers: 6,
  decoder_layers: 6,
  encoder_attention_heads: 12,
  decoder_attention_heads: 12,
  encoder_ffn_dim: 3072,
  decoder_ffn_dim: 3072,
  max_position_embeddings: 1024,
  activation_function: 'gelu',
  pad_token_id: 1,
  bos_token_id: 0,
  eos_token_id: 2,
  decoder_start_token_id: 2,
};
