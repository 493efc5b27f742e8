/**
 * A TCP proxy on 127.0.0.1 that holds every chunk `delayMs` before passing it on, each way:
 * the network between the SFTP remote and every client in the M rows. It runs as its own
 * process (`node delay-proxy.js <target-port> <delay-ms>`, printing its port), because the
 * bench's own thread blocks in synchronous reads and child processes while it measures,
 * and a proxy on that thread would stall with it.
 *
 * Order is kept: timers of one duration fire in the order they were set. Throughput is
 * what the endpoints' windows allow over the added round trip, as on a real link.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';

export interface DelayProxy {
  readonly port: number;
  stop(): Promise<void>;
}

/** Starts the proxy process in front of 127.0.0.1:`targetPort`. */
export async function startDelayProxy(targetPort: number, delayMs: number): Promise<DelayProxy> {
  const child: ChildProcess = spawn(process.execPath, [__filename, String(targetPort), String(delayMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^port (\d+)\n/.exec(out);
      if (m !== null) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`delay proxy exited (${code}) before it listened`)));
  });
  return {
    port,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function delayed(from: net.Socket, to: net.Socket, delayMs: number): void {
  from.on('data', (chunk: Buffer) => {
    setTimeout(() => {
      if (!to.destroyed) to.write(chunk);
    }, delayMs);
  });
  from.on('end', () => setTimeout(() => to.end(), delayMs));
  from.on('error', () => to.destroy());
}

function serve(targetPort: number, delayMs: number): void {
  const server = net.createServer((client) => {
    client.setNoDelay(true);
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    upstream.setNoDelay(true);
    delayed(client, upstream, delayMs);
    delayed(upstream, client, delayMs);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`port ${(server.address() as net.AddressInfo).port}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
}

if (require.main === module) {
  const [target, delay] = process.argv.slice(2).map(Number);
  if (!Number.isInteger(target) || !(delay! >= 0)) {
    console.error('usage: delay-proxy.js <target-port> <delay-ms>');
    process.exit(2);
  }
  serve(target!, delay!);
}
