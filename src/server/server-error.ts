/** How a server RPC failed. */
export type ServerFaultKind = 'error' | 'timeout' | 'busy';

const CODES = {
  error: 'ERR_CMKIT_SERVER_ERROR',
  timeout: 'ERR_CMKIT_SERVER_TIMEOUT',
  busy: 'ERR_CMKIT_SERVER_BUSY',
} as const;

/** A failed RPC. `kind` says whether retrying may help ('busy') or not. */
export class ServerError extends Error {
  override readonly name = 'ServerError';
  readonly code: (typeof CODES)[ServerFaultKind];
  readonly kind: ServerFaultKind;

  constructor(kind: ServerFaultKind, message: string) {
    super(message);
    this.kind = kind;
    this.code = CODES[kind];
  }
}
