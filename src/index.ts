/**
 * cmkit: a file-system client cache shared by every worker thread of a Node.js process,
 * on a native concurrency core.
 */
export { Fid, fidHash } from './core/fid.js';
export type { FidFields } from './core/fid.js';
export { RefTable, DEFAULT_REF_TABLE_CAPACITY } from './core/ref-table.js';
export type { RefTableDescriptor, RefTableOptions, RefTableStats } from './core/ref-table.js';
export { RwLock } from './core/rw-lock.js';
export type { RwLockDescriptor, RwLockMode } from './core/rw-lock.js';
export type { ErrorCode } from './core/errors.js';

export type { FileServer, FileStatus, FetchResult, StoreOptions, StoreReply, Identity, StatusReply } from './server/file-server.js';
export { Rights } from './server/file-server.js';
export { ServerError } from './server/server-error.js';
export type { ServerFaultKind } from './server/server-error.js';
export { MemoryFileServer } from './server/memory-file-server.js';
export { DirectoryFileServer, FOREIGN_STEP, bytePath } from './server/directory-file-server.js';
export type { DirectoryFileServerOptions, DirectoryServerCounters } from './server/directory-file-server.js';
export type { MemoryFileServerOptions, ServerCounters, FaultSpec, RpcKind } from './server/memory-file-server.js';

export {
  CacheManager,
  DEFAULT_CACHE_SIZE,
  DEFAULT_BLOCK_SIZE,
  DEFAULT_CHUNK_SIZE,
  DEFAULT_MAX_VNODES,
  DEFAULT_MAX_READAHEAD,
  DEFAULT_BUSY_DEADLINE_MS,
  DEFAULT_BUSY_DELAY_MS,
  DEFAULT_BUSY_MAX_DELAY_MS,
} from './cache/cache-manager.js';
export type { BusyRetryPolicy } from './cache/busy-retry.js';
export type { CacheManagerOptions, CacheDescriptor, Caller, RestoredCache } from './cache/cache-manager.js';
export type { BackgroundJob, BackgroundRunner } from './cache/background-job.js';
export { CachePool } from './pool/cache-pool.js';
export type { CachePoolOptions, CachePoolStats } from './pool/cache-pool.js';
export { FairShareQueue } from './pool/fair-share.js';
export type { FairShareOptions, ShareStats } from './pool/fair-share.js';
export type { CacheStats } from './cache/layout.js';
export { PagTable, MAX_TOKENS, DEFAULT_PAG_CAPACITY } from './users/pag-table.js';
export type { PagTableOptions, PagTableDescriptor, PagStats, Token } from './users/pag-table.js';
export { TokenRenewer } from './users/token-renewer.js';
export type { TokenRenewerOptions, RenewalPass } from './users/token-renewer.js';
export { Tracer, TRACE_CATEGORIES } from './trace/tracer.js';
export type { TraceCategory, TraceSink, TracePoint } from './trace/tracer.js';
export { CacheMount } from './mount/cache-mount.js';
export type { CacheMountOptions, MountStats } from './mount/cache-mount.js';
export { fuseUnavailable } from './mount/fuse.js';
export type { NodeAttr, NodeKind, DirEntryInfo, AttrChanges, Requester, Time } from './server/directory-file-server.js';
