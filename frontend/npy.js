// Reads the .npy answer of the `series` route: float32 [steps, channels]. Untrusted bytes:
// the header is checked before anything is allocated. No DOM: Node tests import it.

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const MAX_HEADER = 4096;

export class NpyError extends Error {}

/**
 * A 2-D little-endian float32 .npy in C order.
 * @param {ArrayBuffer} buffer
 * @returns {{rows: number, cols: number, data: Float32Array}}
 */
export function parseNpy2D(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new NpyError('not a .npy file');
  }
  const view = new DataView(buffer);
  const major = bytes[6];
  if (major !== 1 && major !== 2) throw new NpyError(`unknown .npy version ${major}`);
  const start = major === 1 ? 10 : 12;
  if (bytes.length < start) throw new NpyError('truncated .npy header');
  const length = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (length > MAX_HEADER || start + length > bytes.length) {
    throw new NpyError('bad .npy header length');
  }
  const header = new TextDecoder('latin1').decode(bytes.subarray(start, start + length));
  if (!/'descr':\s*'<f4'/.test(header)) throw new NpyError('expected float32 (<f4) values');
  if (!/'fortran_order':\s*False/.test(header)) throw new NpyError('expected C order');
  const shape = /'shape':\s*\((\d+),\s*(\d+)\)/.exec(header);
  if (!shape) throw new NpyError('expected a 2-D shape');
  const rows = Number(shape[1]);
  const cols = Number(shape[2]);
  const offset = start + length;
  if (!Number.isSafeInteger(rows * cols) || bytes.length - offset !== rows * cols * 4) {
    throw new NpyError(`size does not match the shape (${rows}, ${cols})`);
  }
  // Copied: the offset of the values need not be a multiple of 4.
  const data = new Float32Array(buffer.slice(offset));
  return { rows, cols, data };
}
