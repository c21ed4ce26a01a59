/**
 * Model directories over the bart-tiny and t5-tiny fixtures (issue 18) with a tokenizer of exactly their
 * 1,024-token vocabulary, made in each family's format (byte-level BPE for BART, a T5-shaped Unigram
 * tokenizer.json for T5): what the generation pipeline and server tests load.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { shared, t5TokenizerJson, withShared } from './helpers';

export const SEQ2SEQ_VOCAB = 1024;

/** A BART model directory with a byte-level BPE tokenizer of exactly SEQ2SEQ_VOCAB tokens (<s> 0, <pad> 1, </s> 2, <unk> 3). */
export function bartDir(dir: string, config: (c: Record<string, unknown>) => void = () => {}): string {
  for (const f of ['model.safetensors']) copyFileSync(join(shared('fixtures/bart-tiny'), f), join(dir, f));
  const c = JSON.parse(readFileSync(join(shared('fixtures/bart-tiny'), 'config.json'), 'utf8'));
  config(c);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
  const vocab: Record<string, number> = { '<s>': 0, '<pad>': 1, '</s>': 2, '<unk>': 3 };
  // Letters and a space marker first (what the test texts need), then filler pieces up to SEQ2SEQ_VOCAB.
  const pieces = ['Ġ', ...'abcdefghijklmnopqrstuvwxyz'.split(''), ...'abcdefghijklmnopqrstuvwxyz'.split('').map((x) => 'Ġ' + x)];
  for (const p of pieces) vocab[p] = Object.keys(vocab).length;
  for (let i = Object.keys(vocab).length; i < SEQ2SEQ_VOCAB; i++) vocab[`w${i}`] = i;
  writeFileSync(join(dir, 'vocab.json'), JSON.stringify(vocab));
  writeFileSync(join(dir, 'merges.txt'), '#version: 0.2\n' + 'abcdefghijklmnopqrstuvwxyz'.split('').map((x) => `Ġ ${x}`).join('\n') + '\n');
  return dir;
}

/** A T5 model directory with a T5-shaped Unigram tokenizer.json of SEQ2SEQ_VOCAB pieces (<pad> 0, </s> 1, <unk> 2). */
export function t5Dir(dir: string, config: (c: Record<string, unknown>) => void = () => {}): string {
  copyFileSync(join(shared('fixtures/t5-tiny'), 'model.safetensors'), join(dir, 'model.safetensors'));
  const c = JSON.parse(readFileSync(join(shared('fixtures/t5-tiny'), 'config.json'), 'utf8'));
  config(c);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
  const vocab: Array<[string, number]> = [['<pad>', 0], ['</s>', 0], ['<unk>', 0], ['▁', -2]];
  for (const x of 'abcdefghijklmnopqrstuvwxyz') vocab.push([x, -5], ['▁' + x, -4]);
  for (let i = vocab.length; i < SEQ2SEQ_VOCAB; i++) vocab.push([`▁w${i}`, -10]);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(t5TokenizerJson(vocab)));
  return dir;
}

/** The tests that read both fixtures (skipped, saying so, where one is absent). */
export const seq2seqTest = withShared('fixtures/bart-tiny/config.json', 'fixtures/t5-tiny/config.json');
