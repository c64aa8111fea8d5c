/**
 * Named errors. Every error that reaches a user or crosses the bus carries a code people know from the
 * systems slicelab imitates (the kernel's errno names where one fits) and a one-line message.
 */
export type ErrorCode =
  | 'EINVAL' | 'ERANGE' | 'ENOENT' | 'EEXIST' | 'EAGAIN' | 'ENOMEM' | 'EBUSY' | 'EACCES' | 'ETIMEDOUT'
  | 'EISDIR' | 'ENOTDIR' | 'ENOTEMPTY' | 'ENOSPC' | 'ENODEV' | 'ECANCELED'
  | 'EADDRINUSE' | 'EADDRNOTAVAIL' | 'ECONNREFUSED' | 'ECONNRESET' | 'EHOSTUNREACH' | 'ENETUNREACH' | 'ENOTCONN' | 'EPIPE' | 'EBADF' | 'EMSGSIZE' | 'EIO'
  | 'EPROTO' | 'ECONFIG' | 'ENOTRUNNING' | 'ESTALE' | 'EUNAVAILABLE' | 'EINTERNAL';

export class SlicelabError extends Error {
  override readonly name: string = 'SlicelabError';
  constructor(readonly code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A message off the bus that is not what its subject carries. */
export class ProtocolError extends SlicelabError {
  override readonly name = 'ProtocolError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('EPROTO', message, options);
  }
}

/** A cluster config that does not validate: names the file, the field path and what is wrong. */
export class ConfigError extends SlicelabError {
  override readonly name = 'ConfigError';
  constructor(readonly file: string, readonly path: string, readonly problem: string) {
    super('ECONFIG', `${file}: ${path ? `${path}: ` : ''}${problem}`);
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
