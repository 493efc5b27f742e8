/**
 * Lets worker threads reach a FileServer that lives on the thread that created the
 * cache. Requests go over a BroadcastChannel named for the cache; each thread gets
 * replies on a channel of its own, so a reply is copied to one thread only. Names, not
 * ports, travel in the cache descriptor, which therefore stays structured-clonable
 * without a transfer list (piscina tasks and workerData both work).
 */
import { BroadcastChannel, threadId } from 'node:worker_threads';

import { Fid, type FidFields } from '../core/fid.js';
import type { FetchResult, FileServer, Identity, StatusReply, StoreOptions, StoreReply } from './file-server.js';
import { ServerError, type ServerFaultKind } from './server-error.js';

type Call =
  | { op: 'fetchStatus'; fid: FidFields; identity: Identity | undefined }
  | { op: 'fetchData'; fid: FidFields; offset: number; length: number }
  | { op: 'storeData'; fid: FidFields; offset: number; data: Uint8Array; options: StoreOptions };

type Request = Call & { id: number; reply: string };

type Reply =
  | { id: number; ok: true; value: StoreReply | FetchResult | StatusReply }
  /** A failure: its ServerError kind (if one) and its errno (if one: ENOSPC stays ENOSPC across threads). */
  | { id: number; ok: false; kind: ServerFaultKind | undefined; message: string; errno: number | undefined };

/** The serving side: answers requests on `name` with `server`. Call close() to stop. */
export class ServerChannel {
  readonly #requests: BroadcastChannel;
  readonly #replies = new Map<string, BroadcastChannel>();

  constructor(name: string, server: FileServer) {
    this.#requests = new BroadcastChannel(name);
    this.#requests.unref();
    this.#requests.onmessage = (event) => {
      const req = (event as { data: Request }).data;
      void this.#answer(server, req);
    };
  }

  async #answer(server: FileServer, req: Request): Promise<void> {
    let reply: Reply;
    try {
      const fid = Fid.from(req.fid);
      const value =
        req.op === 'fetchStatus'
          ? await server.fetchStatus(fid, req.identity)
          : req.op === 'fetchData'
            ? await server.fetchData(fid, req.offset, req.length)
            : await server.storeData(fid, req.offset, req.data, req.options);
      reply = { id: req.id, ok: true, value };
    } catch (e) {
      const err = e as Error & { errno?: unknown };
      const errno = typeof err.errno === 'number' ? err.errno : undefined;
      reply = { id: req.id, ok: false, kind: e instanceof ServerError ? e.kind : undefined, message: err.message, errno };
    }
    let channel = this.#replies.get(req.reply);
    if (channel === undefined) {
      channel = new BroadcastChannel(req.reply);
      channel.unref();
      this.#replies.set(req.reply, channel);
    }
    channel.postMessage(reply);
  }

  close(): void {
    this.#requests.close();
    for (const c of this.#replies.values()) c.close();
  }
}

/**
 * The calling side: a FileServer whose RPCs go to a ServerChannel. Callback breaks are
 * handled by the serving thread's cache manager (they change shared memory), so this
 * side never reports any.
 */
export class RemoteFileServer implements FileServer {
  static #instances = 0;
  readonly #requests: BroadcastChannel;
  readonly #replies: BroadcastChannel;
  readonly #replyName: string;
  readonly #pending = new Map<number, { resolve: (v: never) => void; reject: (e: Error) => void }>();
  #nextId = 1;

  constructor(name: string) {
    this.#requests = new BroadcastChannel(name);
    this.#requests.unref();
    this.#replyName = `${name}.reply.${threadId}.${RemoteFileServer.#instances++}`;
    this.#replies = new BroadcastChannel(this.#replyName);
    this.#replies.unref();
    this.#replies.onmessage = (event) => {
      const reply = (event as { data: Reply }).data;
      const p = this.#pending.get(reply.id);
      if (p === undefined) return;
      this.#pending.delete(reply.id);
      if (this.#pending.size === 0) this.#replies.unref();
      if (reply.ok) p.resolve(reply.value as never);
      else p.reject(new ServerError(reply.kind ?? 'error', reply.message, reply.errno));
    };
  }

  #call<T>(req: Call): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: never) => void, reject });
      this.#replies.ref(); // keep the thread alive while a reply is due
      this.#requests.postMessage({ ...req, id, reply: this.#replyName });
    });
  }

  fetchStatus(fid: Fid, identity?: Identity): Promise<StatusReply> {
    return this.#call({ op: 'fetchStatus', fid: fid.toJSON(), identity });
  }

  fetchData(fid: Fid, offset: number, length: number): Promise<FetchResult> {
    return this.#call({ op: 'fetchData', fid: fid.toJSON(), offset, length });
  }

  storeData(fid: Fid, offset: number, data: Uint8Array, options: StoreOptions = {}): Promise<StoreReply> {
    return this.#call({ op: 'storeData', fid: fid.toJSON(), offset, data, options });
  }

  onCallbackBreak(): void {}

  close(): void {
    this.#requests.close();
    this.#replies.close();
  }
}
