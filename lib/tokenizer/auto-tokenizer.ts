/**
 * AutoTokenizer: the one loader of a tokenizer directory, for every family (as transformers' and
 * transformers.js' AutoTokenizer). The family comes from tokenizer_config.json's `tokenizer_class`, else from
 * config.json's `model_type` (the directory's own, or `options.modelType`), else from the model the files hold
 * (family.ts). A BERT tokenizer comes back as a BertTokenizer.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as v from '../runtime/validate';
import { detectFamily } from './family';
import { BertTokenizer, PreTrainedTokenizer } from './tokenizer';
import { readTokenizerDir } from './tokenizer-json';

export { hasTokenizerFiles, TOKENIZER_FILES } from './tokenizer-json';

export interface AutoTokenizerOptions {
  /** The model's config.json `model_type` ('bert', 'distilbert', 'roberta', 'xlm-roberta'); default: `dir/config.json`'s, if any. */
  modelType?: string;
}

/**
 * config.json's model_type in `dir`; undefined when there is no readable config.json (the model's loader
 * reports what is wrong with it, E_BAD_CONFIG: a tokenizer then follows its own files, which are checked).
 */
export function modelTypeIn(dir: string): unknown {
  try {
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as unknown;
    return cfg && typeof cfg === 'object' ? (cfg as Record<string, unknown>).model_type : undefined;
  } catch {
    return undefined;
  }
}

export class AutoTokenizer {
  /**
   * Loads the tokenizer of `dir`: `tokenizer.json`, or the slow tokenizer's files (`vocab.txt`, or `vocab.json`
   * + `merges.txt`), with `tokenizer_config.json` when present.
   */
  static fromDir(dir: string, options: AutoTokenizerOptions = {}): PreTrainedTokenizer {
    v.string('dir', dir, { nonEmpty: true });
    const o = v.options('options', options, ['modelType']);
    const modelType = o.modelType === undefined ? modelTypeIn(dir) : v.string('options.modelType', o.modelType, { nonEmpty: true });
    const { json, config, source, modelKind } = readTokenizerDir(dir);
    const family = detectFamily({ tokenizerClass: config.tokenizer_class, modelType, modelKind, source });
    if (family.name === 'bert') return new BertTokenizer(json, config, source);
    return new PreTrainedTokenizer(json, { family, config, source });
  }
}
