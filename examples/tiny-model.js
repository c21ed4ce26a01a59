// What every example starts from: a tiny random BERT (hidden 64, 2 layers) with a WordPiece vocabulary built from
// a few sentences, saved as a Hugging Face directory. Nothing is downloaded, so the examples run anywhere in
// seconds. With a real model, skip this and pass its directory (or a hub id) instead.
'use strict';
const { mkdtempSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { BertModel, buildWordPieceVocab, writeVocab } = require('blockprune');

/** Sentences for the vocabulary and for the small sentiment task of the training examples. */
const SENTENCES = [
  ['a gripping , well acted film', 1],
  ['a fine film with a good story', 1],
  ['good acting and a great story', 1],
  ['the best film of the year', 1],
  ['a dull and boring film', 0],
  ['bad acting and a weak story', 0],
  ['the worst film of the year', 0],
  ['boring , slow and bad', 0],
];

/** A fresh temporary folder (removed by `cleanup()`). */
function tempFolder(prefix = 'blockprune-example-') {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * Saves a random model of `task` ('text-classification' with labels negative/positive, or 'question-answering')
 * with its vocabulary into `dir`; returns `dir`.
 */
async function makeTinyModel(dir, task = 'text-classification', seed = 0) {
  const vocab = buildWordPieceVocab(
    SENTENCES.flatMap(([s]) => [s, s]).concat(['where is the eiffel tower ?', 'the eiffel tower is in paris .', 'is it raining', 'the sun is out']),
    { size: 200, minCharCount: 1 },
  );
  const config = {
    vocab_size: vocab.length,
    hidden_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    intermediate_size: 128,
    max_position_embeddings: 128,
    id2label: { 0: 'negative', 1: 'positive' },
  };
  const model = await BertModel.fromConfig(config, { task, seed });
  await model.save(dir);
  model.dispose();
  writeVocab(dir, vocab);
  return dir;
}

/** Runs an example's `main(folder)` in a temporary folder, removed afterwards; a failure prints it and exits 1. */
function runInTempFolder(main) {
  const work = tempFolder();
  main(work.path)
    .finally(work.cleanup)
    .catch((e) => {
      console.error(e);
      process.exitCode = 1;
    });
}

module.exports = { SENTENCES, makeTinyModel, runInTempFolder, tempFolder };
