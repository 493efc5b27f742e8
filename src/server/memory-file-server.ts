import { setImmediate as nextTurn, setTimeout as timer } from 'node:timers/promises';

import { invalidArgType, outOfRange } from '../core/errors.js';
import { Fid } from '../core/fid.js';
import { checkObject } from '../core/validate.js';
import { Rights, type FetchResult, type FileServer, type FileStatus, type Identity, type StatusReply, type StoreOptions, type StoreReply } from './file-server.js';
import { Callbacks } from './callbacks.js';
import { ServerError, type ServerFaultKind } from './server-error.js';
import { Wire } from './wire.js';

export interface MemoryFileServerOptions {
  /**
   * Milliseconds every RPC takes before it is served (the round trip). RPCs overlap.
   * @default 0
   */
  readonly rpcLatencyMs?: number;
  /**
   * Nanoseconds each byte adds to the RPC that moves it (a per-byte cost that, unlike
   * bandwidth, does not make RPCs queue behind each other).
   * @default 0
   */
  readonly byteLatencyNs?: number;
  /**
   * Bytes per second the server moves in all (fetches and stores share it); 0 for no
   * limit. Transfers queue one after another on this one wire.
   * @default 0
   */
  readonly bandwidth?: number;
  /**
   * Sleep to the microsecond by yielding to the event loop for the last millisecond of
   * each wait. That keeps this thread busy while any RPC waits; false sleeps on timers
   * alone (waits round up to whole milliseconds) and leaves the CPU to other threads,
   * as a remote server would.
   * @default true
   */
  readonly preciseSleep?: boolean;
}

export type RpcKind = 'fetchStatus' | 'fetchData' | 'storeData';

/** What the server did: the benchmark's and the tests' truth for work avoided. */
export interface ServerCounters {
  fetchStatus: number;
  fetchData: number;
  storeData: number;
  bytesFetched: number;
  bytesStored: number;
}

export interface FaultSpec {
  readonly rpc: RpcKind;
  readonly kind: ServerFaultKind;
  /** How many of the next matching RPCs fail. @default 1 */
  readonly count?: number;
  /** Only RPCs on this file match. @default every file */
  readonly fid?: Fid;
  /** The errno the failure names, as node:fs gives it (negative: -28 for ENOSPC). @default none */
  readonly errno?: number;
}

interface ServerFile {
  bytes: Uint8Array; // capacity >= length
  length: number;
  dataVersion: number;
  /** Rights by userId ('anonymous' for callers with none); undefined: everyone may do all. */
  acl?: Map<number | 'anonymous', number>;
}

/**
 * Waits `ms` milliseconds, to a few microseconds: timers fire on whole milliseconds and
 * late, which would make a 0.25 ms transfer cost 1 ms or more. The last millisecond is
 * spent yielding to the event loop until the deadline.
 */
async function preciseSleep(ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  if (ms >= 2) await timer(Math.floor(ms) - 1);
  while (performance.now() < deadline) await nextTurn();
}

/** A finite number >= 0. */
function checkNumber(value: unknown, name: string): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!(value >= 0) || value === Infinity) throw outOfRange(name, 'a finite number >= 0', value);
  return value;
}

/**
 * A file server in this process, for tests and benchmarks: files by Fid with bytes and
 * a data version, several client connections with callback breaks, injectable latency,
 * bandwidth and faults, and counters of RPCs and bytes.
 */
export class MemoryFileServer {
  readonly #files = new Map<string, ServerFile>();
  readonly #connections = new Set<MemoryConnection>();
  readonly #faults: Array<{ rpc: RpcKind; kind: ServerFaultKind; left: number; fid: string | undefined; errno: number | undefined }> = [];
  readonly #rpcLatencyMs: number;
  readonly #byteLatencyNs: number;
  readonly #wire: Wire;
  readonly #sleep: (ms: number) => Promise<unknown>;
  counters: ServerCounters = MemoryFileServer.#zeroCounters();

  constructor(options: MemoryFileServerOptions = {}) {
    checkObject(options, 'options');
    this.#rpcLatencyMs = checkNumber(options.rpcLatencyMs ?? 0, 'options.rpcLatencyMs');
    this.#byteLatencyNs = checkNumber(options.byteLatencyNs ?? 0, 'options.byteLatencyNs');
    const bandwidth = checkNumber(options.bandwidth ?? 0, 'options.bandwidth');
    const precise = options.preciseSleep ?? true;
    if (typeof precise !== 'boolean') throw invalidArgType('options.preciseSleep', 'of type boolean', precise);
    this.#sleep = precise ? preciseSleep : (ms) => (ms > 0 ? timer(Math.ceil(ms)) : Promise.resolve());
    this.#wire = new Wire(bandwidth, this.#sleep);
  }

  static #zeroCounters(): ServerCounters {
    return { fetchStatus: 0, fetchData: 0, storeData: 0, bytesFetched: 0, bytesStored: 0 };
  }

  /** A new client connection: one cache manager's view of this server. */
  connect(): FileServer {
    const c = new MemoryConnection(this);
    this.#connections.add(c);
    return c;
  }

  /** Creates or replaces a file, without counting an RPC. Its data version becomes 1. */
  createFile(fid: Fid, contents: Uint8Array = new Uint8Array(0)): void {
    this.#files.set(fid.toString(), { bytes: contents.slice(), length: contents.length, dataVersion: 1 });
  }

  /**
   * Sets what `user` may do on the file (Rights bits; 0 revokes), as an ACL change on a
   * real server would: every client that caches the file gets a callback break. A file
   * whose ACL was never set lets everyone do everything.
   */
  setAccess(fid: Fid, user: number | 'anonymous', rights: number): void {
    const f = this.#file(fid);
    (f.acl ??= new Map()).set(user, rights);
    for (const c of this.#connections) c.breakCallback(fid);
  }

  /** @internal The rights of `identity` on a file. */
  rightsOf(f: ServerFile, identity: Identity | undefined): number {
    if (f.acl === undefined) return Rights.All;
    return (identity !== undefined ? f.acl.get(identity.userId) : undefined) ?? f.acl.get('anonymous') ?? 0;
  }

  /** A copy of a file's bytes (no RPC counted). */
  contents(fid: Fid): Uint8Array {
    const f = this.#file(fid);
    return f.bytes.slice(0, f.length);
  }

  status(fid: Fid): FileStatus {
    const f = this.#file(fid);
    return { dataVersion: f.dataVersion, length: f.length };
  }

  /** Makes the next `count` RPCs of one kind fail. */
  injectFault(spec: FaultSpec): void {
    this.#faults.push({ rpc: spec.rpc, kind: spec.kind, left: spec.count ?? 1, fid: spec.fid?.toString(), errno: spec.errno });
  }

  /** Drops every injected fault not yet used. */
  clearFaults(): void {
    this.#faults.length = 0;
  }

  resetCounters(): void {
    this.counters = MemoryFileServer.#zeroCounters();
  }

  /** @internal The body of every RPC: counts it, then latency, faults, the transfer. */
  async serve<T>(rpc: RpcKind, fid: Fid, bytes: () => number, body: () => T): Promise<T> {
    this.counters[rpc]++;
    if (this.#rpcLatencyMs > 0) await this.#sleep(this.#rpcLatencyMs);
    const key = fid.toString();
    const fault = this.#faults.find((f) => f.rpc === rpc && f.left > 0 && (f.fid === undefined || f.fid === key));
    if (fault !== undefined) {
      fault.left--;
      if (fault.kind === 'timeout') await this.#sleep(Math.max(1, this.#rpcLatencyMs));
      throw new ServerError(fault.kind, `${rpc} ${key}: injected ${fault.kind}`, fault.errno);
    }
    const result = body();
    await this.#transfer(bytes());
    return result;
  }

  async #transfer(n: number): Promise<void> {
    if (n === 0) return;
    if (this.#byteLatencyNs > 0) await this.#sleep((n * this.#byteLatencyNs) / 1e6);
    await this.#wire.transfer(n);
  }

  /** @internal */
  file(fid: Fid): ServerFile {
    return this.#file(fid);
  }

  /** @internal Breaks the callback of every connection but `from` that caches the file. */
  breakCallbacks(fid: Fid, from: MemoryConnection): void {
    for (const c of this.#connections) if (c !== from) c.breakCallback(fid);
  }

  #file(fid: Fid): ServerFile {
    const f = this.#files.get(fid.toString());
    if (f === undefined) throw new ServerError('error', `no such file ${fid}`);
    return f;
  }
}

class MemoryConnection implements FileServer {
  readonly #server: MemoryFileServer;
  readonly #callbacks = new Callbacks();

  constructor(server: MemoryFileServer) {
    this.#server = server;
  }

  onCallbackBreak(listener: (fid: Fid) => void): void {
    this.#callbacks.onBreak(listener);
  }

  breakCallback(fid: Fid): void {
    this.#callbacks.break(fid);
  }

  fetchStatus(fid: Fid, identity?: Identity): Promise<StatusReply> {
    return this.#server.serve('fetchStatus', fid, () => 0, () => {
      const f = this.#server.file(fid);
      this.#callbacks.promise(fid);
      return { dataVersion: f.dataVersion, length: f.length, rights: this.#server.rightsOf(f, identity) };
    });
  }

  fetchData(fid: Fid, offset: number, length: number): Promise<FetchResult> {
    let n = 0;
    return this.#server.serve('fetchData', fid, () => n, () => {
      const f = this.#server.file(fid);
      this.#callbacks.promise(fid);
      const data = f.bytes.slice(Math.min(offset, f.length), Math.min(offset + length, f.length));
      n = data.length;
      this.#server.counters.bytesFetched += n;
      return { data, dataVersion: f.dataVersion, length: f.length };
    });
  }

  storeData(fid: Fid, offset: number, data: Uint8Array, options: StoreOptions = {}): Promise<StoreReply> {
    const copy = data.slice(); // the server keeps its own bytes, as over a network
    return this.#server.serve('storeData', fid, () => copy.length, () => {
      const f = this.#server.file(fid);
      const conflict = options.baseVersion !== undefined && options.baseVersion !== f.dataVersion;
      if (options.truncPos !== undefined) setLength(f, Math.min(f.length, options.truncPos));
      if (copy.length > 0) {
        if (offset + copy.length > f.length) setLength(f, offset + copy.length);
        f.bytes.set(copy, offset);
      }
      if (options.fileLength !== undefined && (!conflict || options.fileLengthSet === true)) setLength(f, options.fileLength);
      f.dataVersion++;
      this.#server.counters.bytesStored += copy.length;
      this.#callbacks.promise(fid);
      this.#server.breakCallbacks(fid, this);
      return { dataVersion: f.dataVersion, length: f.length, conflict };
    });
  }
}

/** Sets a file's length; bytes past the old length read as zero. */
function setLength(f: ServerFile, length: number): void {
  if (length > f.bytes.length) {
    const grown = new Uint8Array(Math.max(length, f.bytes.length * 2));
    grown.set(f.bytes.subarray(0, f.length));
    f.bytes = grown;
  } else if (length < f.length) {
    f.bytes.fill(0, length, f.length);
  }
  f.length = length;
}
