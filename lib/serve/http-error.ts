/**
 * HttpError, the one way the service answers a failure (`status` and `{ error: code, message }`), and the
 * mapping of any other error to it.
 */

/** An error that becomes an HTTP response: `status` and `{ error: code, message }`. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
  }
}

/** The client went away before its request was read: there is no one to answer. */
export class ClientGone extends Error {}

/** The service shutting down before it ran a request: 503. */
export function unavailable(message = 'the service is shutting down; the request was not run'): HttpError {
  return new HttpError(503, 'unavailable', message);
}

/**
 * Any error as the response it deserves: a disposed model is the service shutting down (503), a bad argument
 * the library caught is the client's (400), anything else ours (500).
 */
export function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  const code = (e as { code?: unknown })?.code;
  const message = e instanceof Error ? e.message : String(e);
  if (code === 'E_DISPOSED') return unavailable(`the model is no longer available (${message}); the service is shutting down`);
  if (code === 'E_INVALID_ARG' || e instanceof TypeError || e instanceof RangeError) return new HttpError(400, 'invalid_request', message);
  return new HttpError(500, 'internal', message);
}
