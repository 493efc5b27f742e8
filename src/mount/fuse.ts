/**
 * The addon's FUSE session (native/fuse/, built into the addon on Linux: it speaks the
 * kernel's protocol itself, no libfuse), and why it cannot be used where it cannot. Hand-written types of the addon.
 */
import { accessSync, constants } from 'node:fs';

import { addon } from '../core/native.js';

/** Operation numbers, as the addon's `ops` table gives them. */
export interface FuseOps {
  readonly lookup: number;
  readonly forget: number;
  readonly getattr: number;
  readonly setattr: number;
  readonly opendir: number;
  readonly readdir: number;
  readonly releasedir: number;
  readonly open: number;
  readonly create: number;
  readonly read: number;
  readonly write: number;
  readonly flush: number;
  readonly fsync: number;
  readonly release: number;
  readonly unlink: number;
  readonly rename: number;
  readonly mkdir: number;
  readonly rmdir: number;
  readonly statfs: number;
  readonly readlink: number;
  readonly symlink: number;
  readonly link: number;
  readonly mknod: number;
  readonly readdirplus: number;
}

/** setattr's `toSet` bits, as the addon gives them (native/fuse/fuse_request.h). */
export interface FuseSetAttrBits {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly atime: number;
  readonly mtime: number;
  readonly atimeNow: number;
  readonly mtimeNow: number;
}

/**
 * One kernel request; which fields are set depends on `op`. Names are byte strings (one
 * char per byte), so any byte but '/' and NUL survives.
 */
export interface FuseRequest {
  readonly id: number;
  readonly op: number;
  readonly ino: number;
  readonly name?: string;
  readonly newParent?: number;
  readonly newName?: string;
  /** symlink: what the link holds. */
  readonly target?: string;
  readonly fh?: number;
  readonly offset?: number;
  readonly size?: number;
  readonly flags?: number;
  readonly mode?: number;
  readonly rdev?: number;
  /** Who asks (creates, open, setattr). */
  readonly callerUid?: number;
  readonly callerGid?: number;
  readonly callerPid?: number;
  /** setattr: which values are set (the addon's setAttr bits), and the new values. */
  readonly toSet?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly atime?: [number, number];
  readonly mtime?: [number, number];
  readonly nlookup?: number;
  readonly data?: Buffer;
  /** A data request routed to another consumer: the Fid its file handle was routed with. */
  readonly fid?: [number, number, number, number];
}

/** [ino, mode, nlink, uid, gid, rdev, size, blocks, atimeSec, atimeNsec, mtimeSec, mtimeNsec, ctimeSec, ctimeNsec] */
export type FuseAttr = [number, number, number, number, number, number, number, number, number, number, number, number, number, number];

export interface FuseSessionHandle {
  /** Every request queued since the last take; each must be answered exactly once. */
  take(): FuseRequest[];
  /** False once the kernel ended the session (an outside umount) or stop() ran. */
  alive(): boolean;
  replyError(id: number, errno: number): void;
  replyEntry(id: number, attr: FuseAttr, entryTimeoutS: number, attrTimeoutS: number): void;
  replyCreate(id: number, attr: FuseAttr, entryTimeoutS: number, attrTimeoutS: number, fh: number, keepCache: boolean): void;
  replyAttr(id: number, attr: FuseAttr, attrTimeoutS: number): void;
  replyOpen(id: number, fh: number, keepCache: boolean, directIo: boolean): void;
  replyData(id: number, data: Uint8Array): void;
  replyWrite(id: number, count: number): void;
  replyDir(id: number, names: string[], inos: number[], modes: number[], offset: number): void;
  /**
   * READDIRPLUS: entries from listing index `offset`, as many as fit; returns how many
   * went out. The kernel holds one lookup more of each that went out with an ino != 0.
   */
  replyDirPlus(id: number, names: string[], attrs: FuseAttr[], inos: number[], offset: number, entryTimeoutS: number, attrTimeoutS: number): number;
  replyReadlink(id: number, target: string): void;
  replyStatfs(id: number, fields: [number, number, number, number, number, number, number]): void;
  /**
   * Drops the kernel's cached attributes and pages of `ino`, on another thread (it may
   * wait for page locks that our unanswered reads hold). Returns a ticket: done once
   * invalidated() reaches it; the session wakes us after each.
   */
  invalidate(ino: number): number;
  invalidated(): number;
  /** Answers what is outstanding with EIO and unmounts; waits at most ~100 ms for the loop. */
  stop(): void;
  /** The owner unmounts (see above); another consumer only leaves. */
  ref(): void;
  unref(): void;
  /** The id another thread attaches with: new FuseSession(sessionId, onWake). */
  sessionId(): number;
  /** 0 for the thread that mounted; another serving thread's own id. */
  consumerId(): number;
  /** Sends read, write, flush and fsync of `fh` to `consumer`, naming the file by this Fid. */
  route(fh: number, consumer: number, cell: number, volume: number, vnode: number, unique: number): void;
  unroute(fh: number): void;
  /**
   * The owner only: the session's reader threads answer READs of routed handles from the
   * cache themselves when every block is cached and valid (native/core/read_hit.h), with
   * no wakeup of a JS thread. With no arguments: no more.
   */
  serveHits(
    vnodeTableId: number,
    bufferTableId: number,
    vnodeI32: Int32Array,
    vnodeF64: Float64Array,
    headers: Int32Array,
    versions: Float64Array,
    data: Uint8Array,
    blockSize: number,
  ): void;
  serveHits(): void;
  /** Wakeups of JS threads so far, and READs the reader threads answered themselves. */
  counters(): { wakes: number; readerHits: number };
}

export interface FuseAddon {
  readonly FuseSession: {
    /** Mounts; the calling thread is consumer 0, which gets every request not routed. */
    new (mountpoint: string, options: string[], onWake: () => void): FuseSessionHandle;
    /** Another serving thread of the mounted session `sessionId`. */
    new (sessionId: number, onWake: () => void): FuseSessionHandle;
  };
  readonly ops: FuseOps;
  readonly setAttr: FuseSetAttrBits;
}

/** The addon's FUSE session: built on Linux only. */
const fuse = (addon as unknown as { fuse?: FuseAddon }).fuse;

/** Why FUSE cannot be used here, or undefined when it can. */
export function fuseUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `FUSE mounts need Linux (this is ${process.platform})`;
  if (fuse === undefined) return 'the addon was built without its FUSE session (npm rebuild cmkit)';
  try {
    accessSync('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch {
    return '/dev/fuse is missing or not readable and writable by this process';
  }
  return undefined;
}

/** The FUSE session's binding; throws with fuseUnavailable()'s reason when it cannot be used. */
export function loadFuse(): FuseAddon {
  const why = fuseUnavailable();
  if (why !== undefined) {
    const e = new Error(`cmkit mount: ${why}`) as Error & { code: string };
    e.code = 'ERR_CMKIT_NO_FUSE';
    throw e;
  }
  return fuse!;
}
