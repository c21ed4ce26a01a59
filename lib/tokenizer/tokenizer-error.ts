/** The error the tokenizer folder throws; its `code` says what went wrong. */

export type TokenizerErrorCode = 'E_FILE_NOT_FOUND' | 'E_BAD_TOKENIZER' | 'E_INVALID_ARG';

/** Error thrown by this module; `code` says what went wrong. */
export class TokenizerError extends Error {
  readonly code: TokenizerErrorCode;
  constructor(code: TokenizerErrorCode, message: string) {
    super(message);
    this.name = 'TokenizerError';
    this.code = code;
  }
}
