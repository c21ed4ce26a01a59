/**
 * The tokenizer families as a table (what nn_pruning's model_structure.py is for the model): the model kind, the
 * special-token layout, the token types and the default special tokens of each. A family adds an entry here;
 * the code that encodes, assembles pairs and windows contexts is shared.
 *
 * Which family a directory holds: tokenizer_config.json's `tokenizer_class` (what transformers' AutoTokenizer
 * reads first), else config.json's `model_type`, else the kind of model in the files (tokenizer.json's
 * `model.type`, or vocab.txt / vocab.json + merges.txt).
 */
import { TokenizerError } from './tokenizer-error';

/** The tokenization model of a family, as tokenizer.json's `model.type` names it. */
export type TokenizerModelKind = 'WordPiece' | 'BPE' | 'Unigram';

/** Where the special tokens go and which token types the two sequences get. */
export interface SpecialLayout {
  /** The start token (BERT's `[CLS]`, RoBERTa's `<s>`); null for families without one (T5: `A </s>`). */
  clsId: number | null;
  sepId: number;
  /** Separators between the two sequences of a pair: 1 for BERT (`[SEP]`), 2 for RoBERTa (`</s></s>`). */
  pairSeparators: 1 | 2;
  /** Token type of the second sequence: 1 for BERT; 0 for families with one token type (or none). */
  secondTypeId: 0 | 1;
}

export interface TokenizerFamily {
  /** config.json's model_type. */
  readonly name: string;
  readonly model: TokenizerModelKind;
  readonly pairSeparators: 1 | 2;
  readonly secondTypeId: 0 | 1;
  /** Default special tokens (tokenizer_config.json may rename them). */
  readonly specials: Readonly<SpecialNames>;
  /** transformers' tokenizer classes of the family (and their `Fast` twins). */
  readonly tokenizerClasses: readonly string[];
}

/** The special tokens' names (tokenizer_config.json's `unk_token`, `cls_token` ...); '' where a family has none. */
export interface SpecialNames {
  unk: string;
  cls: string;
  sep: string;
  pad: string;
  mask: string;
}

export const BERT_SPECIALS: Readonly<SpecialNames> = { unk: '[UNK]', cls: '[CLS]', sep: '[SEP]', pad: '[PAD]', mask: '[MASK]' };
export const ROBERTA_SPECIALS: Readonly<SpecialNames> = { unk: '<unk>', cls: '<s>', sep: '</s>', pad: '<pad>', mask: '<mask>' };
/** T5 has no start token and no mask token (an empty name: none). */
export const T5_SPECIALS: Readonly<SpecialNames> = { unk: '<unk>', cls: '', sep: '</s>', pad: '<pad>', mask: '' };

export const TOKENIZER_FAMILIES: Readonly<Record<string, TokenizerFamily>> = {
  bert: { name: 'bert', model: 'WordPiece', pairSeparators: 1, secondTypeId: 1, specials: BERT_SPECIALS, tokenizerClasses: ['BertTokenizer'] },
  // DistilBertTokenizer is BERT's WordPiece without token_type_ids in its output (the model has no token type
  // embeddings). The batches here always carry a tokenTypeIds array, so it is all zeros, which the model ignores.
  distilbert: { name: 'distilbert', model: 'WordPiece', pairSeparators: 1, secondTypeId: 0, specials: BERT_SPECIALS, tokenizerClasses: ['DistilBertTokenizer'] },
  // RoBERTa has one token type: create_token_type_ids_from_sequences gives zeros for both sequences.
  roberta: { name: 'roberta', model: 'BPE', pairSeparators: 2, secondTypeId: 0, specials: ROBERTA_SPECIALS, tokenizerClasses: ['RobertaTokenizer'] },
  // BART's tokenizer is RoBERTa's (the GPT-2 byte-level BPE, `<s> A </s></s> B </s>`): BartTokenizer subclasses it.
  bart: { name: 'bart', model: 'BPE', pairSeparators: 2, secondTypeId: 0, specials: ROBERTA_SPECIALS, tokenizerClasses: ['BartTokenizer'] },
  // T5: SentencePiece Unigram, `A </s>` and `A </s> B </s>`, no start token, one token type.
  t5: { name: 't5', model: 'Unigram', pairSeparators: 1, secondTypeId: 0, specials: T5_SPECIALS, tokenizerClasses: ['T5Tokenizer'] },
  'xlm-roberta': { name: 'xlm-roberta', model: 'Unigram', pairSeparators: 2, secondTypeId: 0, specials: ROBERTA_SPECIALS, tokenizerClasses: ['XLMRobertaTokenizer'] },
};

/** The family whose files hold this kind of model, when nothing names the family. */
const FAMILY_OF_MODEL: Record<TokenizerModelKind, string> = { WordPiece: 'bert', BPE: 'roberta', Unigram: 'xlm-roberta' };

const familyList = (): string => Object.keys(TOKENIZER_FAMILIES).join(', ');

/** The family named by a model_type (config.json), or throws E_BAD_TOKENIZER listing the known ones. */
export function tokenizerFamily(name: string): TokenizerFamily {
  const f = Object.prototype.hasOwnProperty.call(TOKENIZER_FAMILIES, name) ? TOKENIZER_FAMILIES[name] : undefined;
  if (!f) throw new TokenizerError('E_BAD_TOKENIZER', `no tokenizer family '${name}': the families are ${familyList()}`);
  return f;
}

export interface FamilyClues {
  /** tokenizer_config.json's tokenizer_class. */
  tokenizerClass?: unknown;
  /** config.json's model_type. */
  modelType?: unknown;
  /** The kind of model the tokenizer files hold. */
  modelKind: TokenizerModelKind;
  /** Named in errors. */
  source: string;
}

/**
 * The family of a tokenizer directory (see the file comment for the order), checked against the model its
 * files hold: a RoBERTa config beside a vocab.txt is an error that says so, not a WordPiece tokenizer laid out
 * as RoBERTa's.
 */
export function detectFamily(clues: FamilyClues): TokenizerFamily {
  let family: TokenizerFamily;
  let why: string;
  if (typeof clues.tokenizerClass === 'string' && clues.tokenizerClass !== '') {
    const cls = clues.tokenizerClass.replace(/Fast$/, '');
    const f = Object.values(TOKENIZER_FAMILIES).find((x) => x.tokenizerClasses.includes(cls));
    if (!f) {
      const known = Object.values(TOKENIZER_FAMILIES).flatMap((x) => x.tokenizerClasses);
      throw new TokenizerError('E_BAD_TOKENIZER', `${clues.source}: tokenizer_class '${clues.tokenizerClass}' is not supported; supported: ${known.join(', ')} (and their Fast versions)`);
    }
    family = f;
    why = `tokenizer_class '${clues.tokenizerClass}'`;
  } else if (typeof clues.modelType === 'string' && Object.prototype.hasOwnProperty.call(TOKENIZER_FAMILIES, clues.modelType)) {
    family = TOKENIZER_FAMILIES[clues.modelType];
    why = `model_type '${clues.modelType}'`;
  } else {
    // No name, or a model_type without a tokenizer family of its own: the files say what the tokenizer is.
    return TOKENIZER_FAMILIES[FAMILY_OF_MODEL[clues.modelKind]];
  }
  if (family.model !== clues.modelKind) {
    throw new TokenizerError(
      'E_BAD_TOKENIZER',
      `${clues.source}: ${why} needs a ${family.model} tokenizer but the files hold a ${clues.modelKind} model; ` +
        `set tokenizer_class in tokenizer_config.json to the tokenizer the model was trained with`,
    );
  }
  return family;
}
