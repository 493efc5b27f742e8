/**
 * The CLI's libuv thread pool: each call on the backing directory (an open, a read, a
 * store's write and fdatasync) holds one pool thread until the backing file system
 * answers, so the pool's size is how many of them can be outstanding at once. Node's
 * default of 4 serialises a cold sequential read over a network mount behind four round
 * trips (M1 cold over sshfs, --quick: 94 MiB/s with 4, 118 with 16). Set before anything
 * uses the pool (libuv starts it at first use); a UV_THREADPOOL_SIZE the user gave wins.
 * A program that mounts with CacheMount itself chooses its own.
 */
export const MOUNT_POOL_THREADS = 16;

process.env['UV_THREADPOOL_SIZE'] ??= String(MOUNT_POOL_THREADS);
