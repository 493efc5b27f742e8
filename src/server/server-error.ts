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
  /** The file system's errno where one caused it, negative as node:fs gives it (-2 for ENOENT). */
  readonly errno: number | undefined;

  constructor(kind: ServerFaultKind, message: string, errno?: number) {
    super(message);
    this.kind = kind;
    this.code = CODES[kind];
    this.errno = errno;
  }
}
