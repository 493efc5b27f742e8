import type { Fid } from '../core/fid.js';

/** What the server says of a file: its data version and length. */
export interface FileStatus {
  /** Raised by one on every store, by any client. */
  readonly dataVersion: number;
  readonly length: number;
}

/** What a caller may do on a file, as bits. */
export const Rights = {
  Read: 1,
  Write: 2,
  All: 3,
} as const;

/**
 * Who asks: the user a PAG's token names in the file's cell. A caller with no usable
 * token asks as anonymous (no identity).
 */
export interface Identity {
  readonly userId: number;
}

/** fetchStatus's answer: the status, and what the asker may do. */
export interface StatusReply extends FileStatus {
  /** The asker's rights on the file: Rights bits (1 read, 2 write); all when omitted. */
  readonly rights?: number;
}

export interface FetchResult extends FileStatus {
  /** The bytes from `offset`; shorter than asked at end of file. */
  readonly data: Uint8Array;
}

export interface StoreOptions {
  /** Truncate the file to this length before writing (a truncation made since the last store). */
  readonly truncPos?: number;
  /** The file's length after the store: extends with zeros or truncates after writing. */
  readonly fileLength?: number;
  /**
   * The data version the caller's bytes were written over. If the file has changed
   * since (another client, or a change made outside the server), the store is a
   * conflict: the bytes are written over the file as it is now, `fileLength` is not
   * applied unless `fileLengthSet` (it describes a file that no longer exists), and the
   * reply says so.
   */
  readonly baseVersion?: number;
  /** `fileLength` is one the caller set (a truncation), so it holds over a conflict too. */
  readonly fileLengthSet?: boolean;
}

/** storeData's answer: the status after the store, and whether it was a conflict. */
export interface StoreReply extends FileStatus {
  readonly conflict?: boolean;
}

/**
 * The contract between the cache manager and a file server. Every call is async and may
 * reject with a ServerError. A server breaks the callback of every other client that
 * caches a file when one client stores to it: the client learns that its status of that
 * file may be stale (nothing more: the next fetchStatus decides).
 */
export interface FileServer {
  /** The status, and the rights of `identity` (anonymous when omitted). */
  fetchStatus(fid: Fid, identity?: Identity): Promise<StatusReply>;
  fetchData(fid: Fid, offset: number, length: number): Promise<FetchResult>;
  /** Writes `data` at `offset` (after `truncPos`, before `fileLength`); one new data version. */
  storeData(fid: Fid, offset: number, data: Uint8Array, options?: StoreOptions): Promise<StoreReply>;
  /** Adds a listener for callback breaks on this connection. */
  onCallbackBreak(listener: (fid: Fid) => void): void;
  /** The path the server last knew the file by, for messages (no RPC); optional. */
  pathOf?(fid: Fid): string | undefined;
}
