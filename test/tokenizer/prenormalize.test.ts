/** lib/tokenizer/prenormalize: where tokenizers.js differs from transformers 4.4.2, fixed before the library runs. */
import { loaders, st, tok } from './helpers';

// ---------------------------------------------------------------------------------------------------------
// Where tokenizers.js differs from transformers 4.4.2 (fixed by BertTokenizer's pre-normalization).
// Expected values follow the 4.4.2 BasicTokenizer logic; the comments give what tokenizers.js alone returns.
// ---------------------------------------------------------------------------------------------------------

st('pre-normalization fixes for tokenizers.js discrepancies', (t) => {
  for (const kind of Object.keys(loaders)) {
    const tk = tok(kind);
    // CJK ext. B is a separate word in HF (tokenizers.js alone: "𠀀abc" -> [UNK])
    t.deepEqual(tk.tokenize('\u{20000}abc'), ['[UNK]', 'abc']);
    // unassigned code points are control chars for BERT (tokenizers.js alone keeps U+0378 -> [UNK])
    t.deepEqual(tk.tokenize('ab\u0378c'), ['abc']);
    // per-character lowercasing in HF: final capital sigma -> σ (tokenizers.js alone: ς)
    t.deepEqual(tk.tokenize('ΟΔΟΣ'), ['ο', '##δ', '##ο', '##σ']);
    // a special-token string formed only after dropping a control char is not special in HF (tokenizers.js
    // alone agrees; this guards our own control-char removal, which runs before the library's special split)
    t.deepEqual(tk.tokenize('[CL\u200bS] x'), ['[', 'cl', '##s', ']', 'x']);
    t.deepEqual(tk.tokenize('a [CLS]b'), ['a', '[CLS]', 'b']);
  }
});
