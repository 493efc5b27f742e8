import type { CacheDescriptor } from '../cache/cache-manager.js';
import type { BackgroundJob } from '../cache/background-job.js';
import type { FidFields } from '../core/fid.js';

/** What a pool worker is started with. */
export interface PoolWorkerData {
  readonly cache: CacheDescriptor;
  /** The BroadcastChannel on which workers hand background jobs back to the pool. */
  readonly backgroundChannel: string;
}

/** One unit of work for a pool worker; `user` is whose share it runs in. */
export type PoolTask =
  | { readonly op: 'read'; readonly user: string; readonly fid: FidFields; readonly offset: number; readonly length: number }
  | { readonly op: 'write'; readonly user: string; readonly fid: FidFields; readonly offset: number; readonly data: Uint8Array }
  | { readonly op: 'truncate'; readonly user: string; readonly fid: FidFields; readonly length: number }
  | { readonly op: 'flush'; readonly user: string; readonly fid: FidFields }
  | { readonly op: 'background'; readonly user: string; readonly job: BackgroundJob };

/** A background job a worker's cache made, and the user whose request made it. */
export interface BackgroundRequest {
  readonly user: string;
  readonly job: BackgroundJob;
}
