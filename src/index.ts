/**
 * cmkit: the concurrency core of a file-system client cache, shared by every worker
 * thread of a Node.js process.
 */
export { Fid, fidHash } from './core/fid.js';
export type { FidFields } from './core/fid.js';
export { RefTable, DEFAULT_REF_TABLE_CAPACITY } from './core/ref-table.js';
export type { RefTableDescriptor, RefTableOptions, RefTableStats } from './core/ref-table.js';
export { RwLock } from './core/rw-lock.js';
export type { RwLockDescriptor, RwLockMode } from './core/rw-lock.js';
export type { ErrorCode } from './core/errors.js';
