/** The bytes the kill -9 test's writers write: chunk `chunk` of writer `writer`. */
export const CHUNK = 12_288 + 100; // not a whole number of blocks: chunks share blocks
export const CHUNKS = 2_000;

export function chunkBytes(writer: number, chunk: number): Uint8Array {
  const out = new Uint8Array(CHUNK);
  let x = (writer * 1_000_003 + chunk * 7919 + 1) >>> 0;
  for (let i = 0; i < CHUNK; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}
