/**
 * A WordPiece vocabulary generated from a corpus, for training from scratch when no pretrained tokenizer
 * is at hand (nothing is downloaded): special tokens, the corpus's characters (alone and as "##" pieces),
 * then its most frequent words. Any word the vocabulary lacks splits into characters, so little becomes
 * [UNK]. Written as vocab.txt, it loads with BertTokenizer.fromDir like bert-base-uncased's.
 */
import { join } from 'node:path';
import { writeFileAtomicSync } from '../runtime/atomic';
import * as v from '../runtime/validate';

export const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;

/** BERT-style pre-tokenization for counting: lowercase, accents stripped, words and single punctuation. */
export function preTokenize(text: string): string[] {
  const norm = text.toLowerCase().normalize('NFD').replace(/\p{Mn}/gu, '');
  return norm.match(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}\p{C}]/gu) ?? [];
}

export interface VocabOptions {
  /** Total size including special tokens and characters (default 8000). */
  size?: number;
  /** Characters seen fewer times are left out (they become [UNK]); default 3. */
  minCharCount?: number;
  /** At most this many distinct characters (default 1000). */
  maxChars?: number;
}

export function buildWordPieceVocab(texts: Iterable<string>, opts: VocabOptions = {}): string[] {
  v.options('opts', opts, ['size', 'minCharCount', 'maxChars']);
  // Room for the five special tokens and a few characters.
  const size = v.integer('opts.size', opts.size ?? 8000, { min: 16 });
  if (opts.minCharCount !== undefined) v.integer('opts.minCharCount', opts.minCharCount, { min: 0 });
  if (opts.maxChars !== undefined) v.positiveInteger('opts.maxChars', opts.maxChars);
  const words = new Map<string, number>();
  const chars = new Map<string, number>();
  for (const t of texts) {
    for (const w of preTokenize(t)) {
      if (w.length > 100) continue;
      words.set(w, (words.get(w) ?? 0) + 1);
      for (const ch of w) chars.set(ch, (chars.get(ch) ?? 0) + 1);
    }
  }
  const vocab: string[] = [...SPECIAL_TOKENS];
  const seen = new Set<string>(vocab);
  const add = (tok: string) => {
    if (!seen.has(tok) && vocab.length < size) {
      seen.add(tok);
      vocab.push(tok);
    }
  };
  const keptChars = [...chars.entries()]
    .filter(([, n]) => n >= (opts.minCharCount ?? 3))
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, opts.maxChars ?? 1000)
    .map(([c]) => c);
  for (const c of keptChars) add(c);
  for (const c of keptChars) add('##' + c);
  const ranked = [...words.entries()].filter(([w, n]) => n >= 2 && [...w].length > 1).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  for (const [w] of ranked) add(w);
  return vocab;
}

/** Writes vocab.txt (one token per line) and a tokenizer_config.json naming it BERT's into `dir`, atomically and durably; returns vocab.txt's path. */
export function writeVocab(dir: string, vocab: readonly string[]): string {
  const path = join(dir, 'vocab.txt');
  writeFileAtomicSync(path, vocab.join('\n') + '\n');
  // Says what the vocabulary is: a model of another family (a random RoBERTa trained on it) keeps its tokenizer.
  writeFileAtomicSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'BertTokenizer', do_lower_case: true }, null, 2) + '\n');
  return path;
}
