// The ESM entry point: the same module objects as the CommonJS build, so a Fid made
// through `import` is an instance of the Fid class seen through `require`.
import cmkit from '../dist/src/index.js';

export const {
  Fid,
  fidHash,
  RefTable,
  DEFAULT_REF_TABLE_CAPACITY,
  RwLock,
  ServerError,
  MemoryFileServer,
  DirectoryFileServer,
  FOREIGN_STEP,
  CacheManager,
  DEFAULT_CACHE_SIZE,
  DEFAULT_BLOCK_SIZE,
  DEFAULT_CHUNK_SIZE,
  DEFAULT_MAX_VNODES,
  DEFAULT_MAX_READAHEAD,
  DEFAULT_BUSY_DEADLINE_MS,
  DEFAULT_BUSY_DELAY_MS,
  DEFAULT_BUSY_MAX_DELAY_MS,
  CachePool,
  FairShareQueue,
  PagTable,
  MAX_TOKENS,
  DEFAULT_PAG_CAPACITY,
  TokenRenewer,
  Rights,
  Tracer,
  TRACE_CATEGORIES,
  CacheMount,
  bytePath,
  fuseUnavailable,
} = cmkit;
export default cmkit;
