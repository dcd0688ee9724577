// NumPy's .npy format (version 1.0): little-endian float32 in C order, readable by numpy.load.

/** The preamble: magic, version, header length, and the header padded to a 64-byte boundary. */
export function npyPreamble(shape: readonly number[]): Buffer {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  const total = 10 + header.length + 1;
  header += `${' '.repeat((64 - (total % 64)) % 64)}\n`;
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1')]);
}

/** A whole .npy file for a float32 array of the given shape. */
export function npyBytes(shape: readonly number[], data: Float32Array): Buffer {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length)
    throw new Error(`npy: shape [${shape.join(', ')}] holds ${count}, not ${data.length}`);
  return Buffer.concat([npyPreamble(shape), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}
