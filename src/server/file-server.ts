import type { Fid } from '../core/fid.js';

/** What the server says of a file: its data version and length. */
export interface FileStatus {
  /** Raised by one on every store, by any client. */
  readonly dataVersion: number;
  readonly length: number;
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
}

/**
 * The contract between the cache manager and a file server. Every call is async and may
 * reject with a ServerError. A server breaks the callback of every other client that
 * caches a file when one client stores to it: the client learns that its status of that
 * file may be stale (nothing more: the next fetchStatus decides).
 */
export interface FileServer {
  fetchStatus(fid: Fid): Promise<FileStatus>;
  fetchData(fid: Fid, offset: number, length: number): Promise<FetchResult>;
  /** Writes `data` at `offset` (after `truncPos`, before `fileLength`); one new data version. */
  storeData(fid: Fid, offset: number, data: Uint8Array, options?: StoreOptions): Promise<FileStatus>;
  /** Registers the listener for callback breaks on this connection. */
  onCallbackBreak(listener: (fid: Fid) => void): void;
}
