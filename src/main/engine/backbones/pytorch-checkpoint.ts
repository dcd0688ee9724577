// Reads a PyTorch checkpoint (`torch.save` of a state dict) without Python and without running anything
// from the file. The zip format (PyTorch ≥ 1.6, torchvision's published weights): `<root>/data.pkl` holds
// a pickle of the state dict whose tensors point at raw little-endian storages `<root>/data/<key>`. The
// pickle is read by a restricted unpickler that knows the handful of globals a state dict needs (ordered
// dicts, tensor and parameter rebuild functions, typed storages) and refuses every other global with a
// typed error: nothing named by the file is ever imported or called.

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { FewShotError } from '../../../shared/errors.ts';

export interface CheckpointTensor {
  name: string;
  dtype: 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'uint8' | 'bool';
  shape: number[];
  /** Float tensors as float32 (converted from half/bfloat16/double); integer tensors as numbers. */
  data: Float32Array | number[];
}

export interface Checkpoint {
  /** Tensors in the file's order. */
  tensors: Map<string, CheckpointTensor>;
  /** The zip's root folder name (torch uses the file's stem at save time). */
  root: string;
}

// ---------------------------------------------------------------- zip

interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  crc: number;
  localOffset: number;
}

function corrupt(file: string, why: string): FewShotError {
  return new FewShotError(
    'MODEL_INVALID',
    `${path.basename(file)} is not a complete PyTorch checkpoint: ${why}. If it was copied from another drive, copy it again.`,
  );
}

function readZipDirectory(buf: Buffer, file: string): Map<string, ZipEntry> {
  // The end-of-central-directory record sits in the last 64 KiB (22 bytes plus an optional comment).
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65557); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    if (buf.length >= 2 && buf[0] === 0x80)
      throw new FewShotError(
        'MODEL_INVALID',
        `${path.basename(file)} is in PyTorch's legacy (pre-1.6) format, which this app does not read. Re-save it with a current PyTorch: torch.save(torch.load(f), "new.pth").`,
      );
    if (buf.length >= 4 && buf.readUInt32LE(0) === 0x04034b50)
      throw corrupt(file, 'the zip archive ends early (truncated)');
    throw new FewShotError(
      'MODEL_INVALID',
      `${path.basename(file)} is not a PyTorch checkpoint (no zip archive inside).`,
    );
  }
  let count = buf.readUInt16LE(eocd + 10);
  let cdSize = buf.readUInt32LE(eocd + 12);
  let cdOffset = buf.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdOffset === 0xffffffff || cdSize === 0xffffffff) {
    // ZIP64: the locator precedes the classic record and points at the 64-bit one.
    const loc = eocd - 20;
    if (loc < 0 || buf.readUInt32LE(loc) !== 0x07064b50)
      throw corrupt(file, 'its ZIP64 directory is missing');
    const z64 = Number(buf.readBigUInt64LE(loc + 8));
    if (z64 + 56 > buf.length || buf.readUInt32LE(z64) !== 0x06064b50)
      throw corrupt(file, 'its ZIP64 directory is damaged');
    count = Number(buf.readBigUInt64LE(z64 + 32));
    cdSize = Number(buf.readBigUInt64LE(z64 + 40));
    cdOffset = Number(buf.readBigUInt64LE(z64 + 48));
  }
  if (cdOffset + cdSize > buf.length) throw corrupt(file, 'its directory points past the end of the file');
  const entries = new Map<string, ZipEntry>();
  let p = cdOffset;
  for (let n = 0; n < count; n++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== 0x02014b50)
      throw corrupt(file, 'its directory is damaged');
    const method = buf.readUInt16LE(p + 10);
    const crc = buf.readUInt32LE(p + 16);
    let compressedSize = buf.readUInt32LE(p + 20);
    let size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    let localOffset = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    // ZIP64 extra field: the 64-bit values, in this order, for each 32-bit field that is saturated.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = buf.readUInt16LE(e);
      const len = buf.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        if (size === 0xffffffff) {
          size = Number(buf.readBigUInt64LE(q));
          q += 8;
        }
        if (compressedSize === 0xffffffff) {
          compressedSize = Number(buf.readBigUInt64LE(q));
          q += 8;
        }
        if (localOffset === 0xffffffff) localOffset = Number(buf.readBigUInt64LE(q));
      }
      e += 4 + len;
    }
    entries.set(name, { name, method, compressedSize, size, crc, localOffset });
    p = extraEnd + commentLen;
  }
  return entries;
}

function readZipEntry(buf: Buffer, entry: ZipEntry, file: string): Buffer {
  const h = entry.localOffset;
  if (h + 30 > buf.length || buf.readUInt32LE(h) !== 0x04034b50)
    throw corrupt(file, `the entry ${entry.name} is damaged`);
  const start = h + 30 + buf.readUInt16LE(h + 26) + buf.readUInt16LE(h + 28);
  const end = start + entry.compressedSize;
  if (end > buf.length) throw corrupt(file, `the entry ${entry.name} ends early (truncated)`);
  const raw = buf.subarray(start, end);
  let data: Buffer;
  if (entry.method === 0) data = raw;
  else if (entry.method === 8) {
    try {
      data = zlib.inflateRawSync(raw);
    } catch {
      throw corrupt(file, `the entry ${entry.name} cannot be decompressed`);
    }
  } else throw corrupt(file, `the entry ${entry.name} uses zip method ${entry.method}`);
  if (data.length !== entry.size) throw corrupt(file, `the entry ${entry.name} has the wrong length`);
  if (crc32(data) !== entry.crc) throw corrupt(file, `the entry ${entry.name} fails its checksum`);
  return data;
}

let CRC_TABLE: Uint32Array | null = null;
function crc32(data: Uint8Array): number {
  if (!CRC_TABLE) {
    CRC_TABLE = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      CRC_TABLE[n] = c >>> 0;
    }
  }
  const t = CRC_TABLE;
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = (t[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// ---------------------------------------------------------------- restricted unpickler

class Global {
  constructor(readonly name: string) {}
}
class Tuple {
  constructor(readonly items: unknown[]) {}
}
class Dict {
  readonly map = new Map<unknown, unknown>();
}
class StorageRef {
  constructor(
    readonly dtype: CheckpointTensor['dtype'],
    readonly key: string,
    readonly numel: number,
  ) {}
}
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

const STORAGES: Record<string, CheckpointTensor['dtype']> = {
  'torch FloatStorage': 'float32',
  'torch HalfStorage': 'float16',
  'torch BFloat16Storage': 'bfloat16',
  'torch DoubleStorage': 'float64',
  'torch LongStorage': 'int64',
  'torch IntStorage': 'int32',
  'torch ByteStorage': 'uint8',
  'torch BoolStorage': 'bool',
};
const CALLABLES = new Set([
  'collections OrderedDict',
  'torch._utils _rebuild_tensor_v2',
  'torch._utils _rebuild_parameter',
]);

function unsafe(file: string, what: string): FewShotError {
  return new FewShotError(
    'MODEL_INVALID',
    `${path.basename(file)} asks to run ${what}, which a state dict never needs; the file was not loaded. Use a checkpoint saved with torch.save(model.state_dict(), f).`,
  );
}

function asInt(v: unknown, file: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'bigint') return Number(v);
  throw corrupt(file, 'a tensor has a non-integer size');
}

function tupleOf(v: unknown, file: string): unknown[] {
  if (v instanceof Tuple) return v.items;
  throw corrupt(file, 'a tensor record is malformed');
}

/** Unpickles `data.pkl`, allowing only what a state dict is made of. */
export function restrictedUnpickle(pkl: Uint8Array, file: string): unknown {
  const buf = Buffer.from(pkl.buffer, pkl.byteOffset, pkl.byteLength);
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let p = 0;
  const need = (n: number) => {
    if (p + n > buf.length) throw corrupt(file, 'its pickle ends early');
  };
  const pop = (): unknown => {
    if (stack.length === 0) throw corrupt(file, 'its pickle is malformed');
    return stack.pop();
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) throw corrupt(file, 'its pickle is malformed');
    return stack.splice(m);
  };
  const top = (): unknown => stack[stack.length - 1];
  const line = (): string => {
    const end = buf.indexOf(0x0a, p);
    if (end < 0) throw corrupt(file, 'its pickle ends early');
    const s = buf.toString('latin1', p, end);
    p = end + 1;
    return s;
  };
  const global = (name: string): Global => {
    if (!(name in STORAGES) && !CALLABLES.has(name)) throw unsafe(file, `"${name.replace(' ', '.')}"`);
    return new Global(name);
  };
  const setItems = (target: unknown, items: unknown[]) => {
    if (!(target instanceof Dict)) throw corrupt(file, 'its pickle is malformed');
    for (let i = 0; i + 1 < items.length; i += 2) target.map.set(items[i], items[i + 1]);
  };
  const reduce = (fn: unknown, args: unknown): unknown => {
    if (!(fn instanceof Global) || !CALLABLES.has(fn.name))
      throw unsafe(file, fn instanceof Global ? `"${fn.name}"` : 'an unknown callable');
    const a = tupleOf(args, file);
    if (fn.name === 'collections OrderedDict') return new Dict();
    if (fn.name === 'torch._utils _rebuild_parameter') {
      if (!(a[0] instanceof TensorRef)) throw corrupt(file, 'a parameter holds no tensor');
      return a[0];
    }
    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    const [storage, offset, size, stride] = a;
    if (!(storage instanceof StorageRef)) throw corrupt(file, 'a tensor has no storage');
    return new TensorRef(
      storage,
      asInt(offset, file),
      tupleOf(size, file).map((x) => asInt(x, file)),
      tupleOf(stride, file).map((x) => asInt(x, file)),
    );
  };
  for (;;) {
    need(1);
    const op = buf[p++] as number;
    switch (op) {
      case 0x80: // PROTO
        need(1);
        p += 1;
        break;
      case 0x95: // FRAME
        need(8);
        p += 8;
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x63: {
        // GLOBAL "module\nname\n"
        const mod = line();
        const name = line();
        stack.push(global(`${mod} ${name}`));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const mod = pop();
        if (typeof mod !== 'string' || typeof name !== 'string')
          throw corrupt(file, 'its pickle is malformed');
        stack.push(global(`${mod} ${name}`));
        break;
      }
      case 0x71: // BINPUT
        need(1);
        memo.set(buf[p++] as number, top());
        break;
      case 0x72: // LONG_BINPUT
        need(4);
        memo.set(buf.readUInt32LE(p), top());
        p += 4;
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
        need(1);
        stack.push(memo.get(buf[p++] as number));
        break;
      case 0x6a: // LONG_BINGET
        need(4);
        stack.push(memo.get(buf.readUInt32LE(p)));
        p += 4;
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new Tuple([]));
        break;
      case 0x85: // TUPLE1
        stack.push(new Tuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push(new Tuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push(new Tuple([pop(), b, c]));
        break;
      }
      case 0x74: // TUPLE
        stack.push(new Tuple(popMark()));
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        (top() as unknown[]).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const list = top();
        if (!Array.isArray(list)) throw corrupt(file, 'its pickle is malformed');
        list.push(...items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Dict());
        break;
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x58: {
        // BINUNICODE
        need(4);
        const n = buf.readUInt32LE(p);
        p += 4;
        need(n);
        stack.push(buf.toString('utf8', p, p + n));
        p += n;
        break;
      }
      case 0x8c: {
        // SHORT_BINUNICODE
        need(1);
        const n = buf[p++] as number;
        need(n);
        stack.push(buf.toString('utf8', p, p + n));
        p += n;
        break;
      }
      case 0x8d: {
        // BINUNICODE8
        need(8);
        const n = Number(buf.readBigUInt64LE(p));
        p += 8;
        need(n);
        stack.push(buf.toString('utf8', p, p + n));
        p += n;
        break;
      }
      case 0x4b: // BININT1
        need(1);
        stack.push(buf[p++]);
        break;
      case 0x4d: // BININT2
        need(2);
        stack.push(buf.readUInt16LE(p));
        p += 2;
        break;
      case 0x4a: // BININT
        need(4);
        stack.push(buf.readInt32LE(p));
        p += 4;
        break;
      case 0x8a: {
        // LONG1
        need(1);
        const n = buf[p++] as number;
        need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(buf[p + i] as number);
        if (n > 0 && ((buf[p + n - 1] as number) & 0x80) !== 0) v -= 1n << BigInt(8 * n);
        p += n;
        stack.push(
          v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v,
        );
        break;
      }
      case 0x47: // BINFLOAT
        need(8);
        stack.push(buf.readDoubleBE(p));
        p += 8;
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(reduce(fn, args));
        break;
      }
      case 0x62: {
        // BUILD: only the state of an ordered dict (its `_metadata`) is expected; it carries no data.
        pop();
        if (!(top() instanceof Dict)) throw unsafe(file, 'object construction');
        break;
      }
      case 0x51: {
        // BINPERSID: ('storage', storage type, key, location, numel)
        const pid = tupleOf(pop(), file);
        const [kind, type, key, , numel] = pid;
        if (
          kind !== 'storage' ||
          !(type instanceof Global) ||
          !(type.name in STORAGES) ||
          typeof key !== 'string'
        )
          throw unsafe(file, 'an unknown persistent object');
        stack.push(new StorageRef(STORAGES[type.name] as CheckpointTensor['dtype'], key, asInt(numel, file)));
        break;
      }
      default:
        throw unsafe(file, `pickle opcode 0x${op.toString(16)}`);
    }
  }
}

const BYTES: Record<CheckpointTensor['dtype'], number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  uint8: 1,
  bool: 1,
};

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function materialise(name: string, t: TensorRef, raw: Buffer, file: string): CheckpointTensor {
  const { dtype } = t.storage;
  const width = BYTES[dtype];
  if (raw.length < t.storage.numel * width)
    throw corrupt(file, `the storage of ${name} is shorter than it says`);
  const count = t.shape.reduce((a, b) => a * b, 1);
  // Element offsets in storage units, following the tensor's strides (a view need not be contiguous).
  const index = new Int32Array(count);
  const dims = t.shape.length;
  const pos = new Array<number>(dims).fill(0);
  for (let i = 0; i < count; i++) {
    let off = t.offset;
    for (let d = 0; d < dims; d++) off += (pos[d] as number) * (t.stride[d] as number);
    if (off < 0 || off >= t.storage.numel) throw corrupt(file, `${name} points outside its storage`);
    index[i] = off;
    for (let d = dims - 1; d >= 0; d--) {
      pos[d] = (pos[d] as number) + 1;
      if ((pos[d] as number) < (t.shape[d] as number)) break;
      pos[d] = 0;
    }
  }
  const read = (o: number): number => {
    const b = o * width;
    switch (dtype) {
      case 'float32':
        return raw.readFloatLE(b);
      case 'float16':
        return halfToFloat(raw.readUInt16LE(b));
      case 'bfloat16': {
        const u = new DataView(new ArrayBuffer(4));
        u.setUint32(0, raw.readUInt16LE(b) << 16);
        return u.getFloat32(0);
      }
      case 'float64':
        return raw.readDoubleLE(b);
      case 'int64':
        return Number(raw.readBigInt64LE(b));
      case 'int32':
        return raw.readInt32LE(b);
      default:
        return raw[b] as number;
    }
  };
  const isFloat = dtype.startsWith('float') || dtype === 'bfloat16';
  const contiguous = index.every((v, i) => v === t.offset + i);
  if (dtype === 'float32' && contiguous) {
    const bytes = raw.subarray(t.offset * 4, (t.offset + count) * 4);
    return { name, dtype, shape: t.shape, data: new Float32Array(new Uint8Array(bytes).buffer) };
  }
  const data: Float32Array | number[] = isFloat ? new Float32Array(count) : new Array<number>(count);
  for (let i = 0; i < count; i++) data[i] = read(index[i] as number);
  return { name, dtype, shape: t.shape, data };
}

/** Reads a PyTorch zip checkpoint holding a state dict (optionally under "state_dict" or "model"). */
export function readCheckpoint(file: string): Checkpoint {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new FewShotError('NOT_FOUND', `Cannot read ${file}: ${(e as Error).message}`);
  }
  const entries = readZipDirectory(buf, file);
  const pklName = [...entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (!pklName)
    throw new FewShotError(
      'MODEL_INVALID',
      `${path.basename(file)} holds no data.pkl; it is not a torch.save file.`,
    );
  const root = pklName.slice(0, -'/data.pkl'.length);
  const byteorder = entries.get(`${root}/byteorder`);
  if (byteorder && readZipEntry(buf, byteorder, file).toString('latin1').trim() !== 'little')
    throw new FewShotError(
      'MODEL_INVALID',
      `${path.basename(file)} was saved big-endian, which this app does not read.`,
    );
  let value = restrictedUnpickle(readZipEntry(buf, entries.get(pklName) as ZipEntry, file), file);
  // Training scripts often save {"state_dict": …} or {"model": …}; torchvision saves the dict itself.
  for (const key of ['state_dict', 'model']) {
    const inner = value instanceof Dict ? value.map.get(key) : undefined;
    if (inner instanceof Dict) value = inner;
  }
  if (!(value instanceof Dict))
    throw new FewShotError(
      'MODEL_INVALID',
      `${path.basename(file)} does not hold a state dict (a mapping of names to tensors).`,
    );
  const tensors = new Map<string, CheckpointTensor>();
  const storages = new Map<string, Buffer>();
  for (const [k, v] of value.map) {
    if (typeof k !== 'string' || !(v instanceof TensorRef)) continue;
    let raw = storages.get(v.storage.key);
    if (!raw) {
      const entry = entries.get(`${root}/data/${v.storage.key}`);
      if (!entry) throw corrupt(file, `the storage of ${k} is missing`);
      raw = readZipEntry(buf, entry, file);
      storages.set(v.storage.key, raw);
    }
    tensors.set(k, materialise(k, v, raw, file));
  }
  if (tensors.size === 0) throw new FewShotError('MODEL_INVALID', `${path.basename(file)} holds no tensors.`);
  return { tensors, root };
}
