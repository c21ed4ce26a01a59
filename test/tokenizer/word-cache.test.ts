/** lib/tokenizer/word-cache: the WordPiece cache is a model the library calls, not a patch of the library's model. */
import test from 'ava';
import { Tokenizer, WordPiece } from '@huggingface/tokenizers';
import { buildBertTokenizerJson } from '../../lib/tokenizer/tokenizer-json';
import { CachedModel, cacheWordPieces } from '../../lib/tokenizer/word-cache';

const TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'the', 'cat', 'dog', 'play', '##ing', '##s', '##ed', 'un', '##play', '.', ',', '!'];
const VOCAB = Object.fromEntries(TOKENS.map((t, i) => [t, i]));
const TEXTS = ['The cat plays.', 'Dogs playing, unplayed!', 'the the the cat cat', 'unknownword [CLS] cat', ''];

/** Counts the words WordPiece itself encodes (a subclass: the library's class is left as it is). */
class CountingWordPiece extends WordPiece {
  words = 0;
  override encode(tokens: string[]): string[] {
    this.words += tokens.length;
    return super.encode(tokens);
  }
}

function libraryTokenizer(): { tk: Tokenizer; json: Record<string, unknown> } {
  const json = buildBertTokenizerJson(VOCAB);
  return { tk: new Tokenizer(json, {}), json };
}

test('the library encodes through the cache, with the results of its own model', (t) => {
  const plain = libraryTokenizer().tk;
  const { tk, json } = libraryTokenizer();
  const inner = new CountingWordPiece(json.model as ConstructorParameters<typeof WordPiece>[0]);
  const cached = cacheWordPieces(tk, inner);
  t.is(tk.model, cached, 'installed as the tokenizer model (a public property)');
  t.false(Object.prototype.hasOwnProperty.call(inner, 'encode'), "the wrapped model's encode is not replaced");
  for (const text of TEXTS) {
    const a = plain.encode(text, { add_special_tokens: false });
    const b = tk.encode(text, { add_special_tokens: false });
    t.deepEqual(b.ids, a.ids, text);
    t.deepEqual(b.tokens, a.tokens, text);
    t.is(tk.token_to_id('cat'), plain.token_to_id('cat'));
  }
  const words = inner.words;
  t.true(words > 0, 'the library called the model');
  for (const text of TEXTS) tk.encode(text, { add_special_tokens: false });
  // If a library version stopped calling `model(...)` / `encode`, this is where it would show.
  t.is(inner.words, words, 'a second pass over the same words is served from the cache');
});

test('a full cache starts over and stays exact', (t) => {
  const { json } = libraryTokenizer();
  const inner = new CountingWordPiece(json.model as ConstructorParameters<typeof WordPiece>[0]);
  const cached = new CachedModel(inner, 2);
  const words = ['cat', 'plays', 'unplayed', 'dogs', 'zzz', 'playing', 'cat'];
  t.deepEqual(cached.encode(words), new WordPiece(json.model as ConstructorParameters<typeof WordPiece>[0]).encode(words));
  t.deepEqual(cached.encode(['cat', 'zzz']), ['cat', '[UNK]']);
  t.is(cached.vocab, inner.vocab, 'the vocabulary tables are shared, not copied');
  t.is(cached.tokens_to_ids, inner.tokens_to_ids);
});
