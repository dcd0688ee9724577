// The ONNX model format (the subset of onnx.proto that backbones use), decoded into plain objects and
// encoded back. Fields this codec does not model are kept as raw bytes, so a round trip loses nothing.

import { Reader, Writer } from './protobuf.ts';

export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, DOUBLE: 11 } as const;

export interface OnnxTensor {
  name: string;
  dims: number[];
  dataType: number;
  /** Little-endian raw bytes; float_data/int64_data inputs are converted to this form on decode. */
  raw: Uint8Array;
  unknown: Uint8Array[];
}

export type OnnxAttribute =
  | { name: string; type: 'float'; f: number }
  | { name: string; type: 'int'; i: number }
  | { name: string; type: 'string'; s: string }
  | { name: string; type: 'floats'; floats: number[] }
  | { name: string; type: 'ints'; ints: number[] }
  | { name: string; type: 'tensor'; t: OnnxTensor }
  /** A subgraph (Loop's body); written by the app, decoded as 'other'. */
  | { name: string; type: 'graph'; g: OnnxGraph }
  | { name: string; type: 'other'; rawBytes: Uint8Array };

export interface OnnxNode {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: OnnxAttribute[];
}

export interface OnnxValueInfo {
  name: string;
  elemType: number;
  /** A number for a fixed size, a string for a symbolic one, null when unknown. */
  shape: (number | string | null)[] | null;
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  valueInfo: OnnxValueInfo[];
  unknown: Uint8Array[];
}

export interface OnnxModel {
  irVersion: number;
  opsets: { domain: string; version: number }[];
  producerName: string;
  producerVersion: string;
  docString: string;
  metadata: Record<string, string>;
  graph: OnnxGraph;
  unknown: Uint8Array[];
}

const ATTR = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7 } as const;

// ---------- decode ----------

export function decodeModel(buf: Uint8Array): OnnxModel {
  const r = new Reader(buf);
  const m: OnnxModel = {
    irVersion: 0,
    opsets: [],
    producerName: '',
    producerVersion: '',
    docString: '',
    metadata: {},
    graph: emptyGraph(),
    unknown: [],
  };
  let sawGraph = false;
  while (!r.done) {
    const start = r.pos;
    const [f, w] = r.tag();
    if (f === 1 && w === 0) m.irVersion = r.int64();
    else if (f === 2 && w === 2) m.producerName = r.string();
    else if (f === 3 && w === 2) m.producerVersion = r.string();
    else if (f === 6 && w === 2) m.docString = r.string();
    else if (f === 7 && w === 2) {
      m.graph = decodeGraph(r.bytes());
      sawGraph = true;
    } else if (f === 8 && w === 2) {
      const o = new Reader(r.bytes());
      const opset = { domain: '', version: 0 };
      while (!o.done) {
        const s = o.pos;
        const [of, ow] = o.tag();
        if (of === 1 && ow === 2) opset.domain = o.string();
        else if (of === 2 && ow === 0) opset.version = o.int64();
        else o.skip(of, ow, s);
      }
      m.opsets.push(opset);
    } else if (f === 14 && w === 2) {
      const e = new Reader(r.bytes());
      let key = '';
      let value = '';
      while (!e.done) {
        const s = e.pos;
        const [ef, ew] = e.tag();
        if (ef === 1 && ew === 2) key = e.string();
        else if (ef === 2 && ew === 2) value = e.string();
        else e.skip(ef, ew, s);
      }
      m.metadata[key] = value;
    } else m.unknown.push(r.skip(f, w, start));
  }
  if (!sawGraph) throw new Error('ONNX: the model has no graph');
  return m;
}

function emptyGraph(): OnnxGraph {
  return { name: '', nodes: [], initializers: [], inputs: [], outputs: [], valueInfo: [], unknown: [] };
}

function decodeGraph(buf: Uint8Array): OnnxGraph {
  const r = new Reader(buf);
  const g = emptyGraph();
  while (!r.done) {
    const start = r.pos;
    const [f, w] = r.tag();
    if (f === 1 && w === 2) g.nodes.push(decodeNode(r.bytes()));
    else if (f === 2 && w === 2) g.name = r.string();
    else if (f === 5 && w === 2) g.initializers.push(decodeTensor(r.bytes()));
    else if (f === 11 && w === 2) g.inputs.push(decodeValueInfo(r.bytes()));
    else if (f === 12 && w === 2) g.outputs.push(decodeValueInfo(r.bytes()));
    else if (f === 13 && w === 2) g.valueInfo.push(decodeValueInfo(r.bytes()));
    else g.unknown.push(r.skip(f, w, start));
  }
  return g;
}

function decodeNode(buf: Uint8Array): OnnxNode {
  const r = new Reader(buf);
  const n: OnnxNode = { name: '', opType: '', domain: '', inputs: [], outputs: [], attributes: [] };
  while (!r.done) {
    const start = r.pos;
    const [f, w] = r.tag();
    if (f === 1 && w === 2) n.inputs.push(r.string());
    else if (f === 2 && w === 2) n.outputs.push(r.string());
    else if (f === 3 && w === 2) n.name = r.string();
    else if (f === 4 && w === 2) n.opType = r.string();
    else if (f === 7 && w === 2) n.domain = r.string();
    else if (f === 5 && w === 2) n.attributes.push(decodeAttribute(r.bytes()));
    else r.skip(f, w, start); // doc_string and others are dropped: they carry no semantics
  }
  return n;
}

function decodeAttribute(buf: Uint8Array): OnnxAttribute {
  const r = new Reader(buf);
  let name = '';
  let type = 0;
  let f32 = 0;
  let i64 = 0;
  let s = '';
  let t: OnnxTensor | null = null;
  const floats: number[] = [];
  const ints: number[] = [];
  while (!r.done) {
    const start = r.pos;
    const [f, w] = r.tag();
    if (f === 1 && w === 2) name = r.string();
    else if (f === 20 && w === 0) type = r.uint();
    else if (f === 2 && w === 5) f32 = r.float();
    else if (f === 3 && w === 0) i64 = r.int64();
    else if (f === 4 && w === 2) s = r.string();
    else if (f === 5 && w === 2) t = decodeTensor(r.bytes());
    else if (f === 7) r.floats(w, floats);
    else if (f === 8) r.int64s(w, ints);
    else r.skip(f, w, start);
  }
  switch (type) {
    case ATTR.FLOAT:
      return { name, type: 'float', f: f32 };
    case ATTR.INT:
      return { name, type: 'int', i: i64 };
    case ATTR.STRING:
      return { name, type: 'string', s };
    case ATTR.FLOATS:
      return { name, type: 'floats', floats };
    case ATTR.INTS:
      return { name, type: 'ints', ints };
    case ATTR.TENSOR:
      if (t) return { name, type: 'tensor', t };
      break;
  }
  return { name, type: 'other', rawBytes: buf };
}

export function decodeTensor(buf: Uint8Array): OnnxTensor {
  const r = new Reader(buf);
  const t: OnnxTensor = { name: '', dims: [], dataType: 0, raw: new Uint8Array(0), unknown: [] };
  const floatData: number[] = [];
  const int64Data: number[] = [];
  const int32Data: number[] = [];
  while (!r.done) {
    const start = r.pos;
    const [f, w] = r.tag();
    if (f === 1) r.int64s(w, t.dims);
    else if (f === 2 && w === 0) t.dataType = r.uint();
    else if (f === 8 && w === 2) t.name = r.string();
    else if (f === 9 && w === 2) t.raw = r.bytes().slice();
    else if (f === 4) r.floats(w, floatData);
    else if (f === 7) r.int64s(w, int64Data);
    else if (f === 5) r.int64s(w, int32Data);
    else if (f === 12 && w === 2) r.bytes();
    else t.unknown.push(r.skip(f, w, start));
  }
  if (t.raw.length === 0) {
    if (floatData.length) t.raw = new Uint8Array(Float32Array.from(floatData).buffer);
    else if (int64Data.length)
      t.raw = new Uint8Array(BigInt64Array.from(int64Data.map((v) => BigInt(v))).buffer);
    else if (int32Data.length) {
      if (t.dataType === DataType.INT32) t.raw = new Uint8Array(Int32Array.from(int32Data).buffer);
      else t.raw = new Uint8Array(Uint8Array.from(int32Data).buffer);
    }
  }
  return t;
}

function decodeValueInfo(buf: Uint8Array): OnnxValueInfo {
  const r = new Reader(buf);
  const v: OnnxValueInfo = { name: '', elemType: 0, shape: null };
  while (!r.done) {
    const start = r.pos;
    const [f, w] = r.tag();
    if (f === 1 && w === 2) v.name = r.string();
    else if (f === 2 && w === 2) {
      const tr = new Reader(r.bytes());
      while (!tr.done) {
        const s = tr.pos;
        const [tf, tw] = tr.tag();
        if (tf === 1 && tw === 2) {
          // TypeProto.Tensor
          const tt = new Reader(tr.bytes());
          while (!tt.done) {
            const s2 = tt.pos;
            const [ttf, ttw] = tt.tag();
            if (ttf === 1 && ttw === 0) v.elemType = tt.uint();
            else if (ttf === 2 && ttw === 2) {
              v.shape = [];
              const sr = new Reader(tt.bytes());
              while (!sr.done) {
                const s3 = sr.pos;
                const [sf, sw] = sr.tag();
                if (sf === 1 && sw === 2) {
                  const dr = new Reader(sr.bytes());
                  let dim: number | string | null = null;
                  while (!dr.done) {
                    const s4 = dr.pos;
                    const [df, dw] = dr.tag();
                    if (df === 1 && dw === 0) dim = dr.int64();
                    else if (df === 2 && dw === 2) dim = dr.string();
                    else dr.skip(df, dw, s4);
                  }
                  v.shape.push(dim);
                } else sr.skip(sf, sw, s3);
              }
            } else tt.skip(ttf, ttw, s2);
          }
        } else tr.skip(tf, tw, s);
      }
    } else r.skip(f, w, start);
  }
  return v;
}

// ---------- encode ----------

export function encodeModel(m: OnnxModel): Uint8Array {
  const w = new Writer();
  w.int64Field(1, m.irVersion);
  if (m.producerName) w.stringField(2, m.producerName);
  if (m.producerVersion) w.stringField(3, m.producerVersion);
  if (m.docString) w.stringField(6, m.docString);
  w.message(7, (g) => encodeGraph(g, m.graph));
  for (const o of m.opsets) {
    w.message(8, (ow) => {
      if (o.domain) ow.stringField(1, o.domain);
      ow.int64Field(2, o.version);
    });
  }
  for (const [key, value] of Object.entries(m.metadata)) {
    w.message(14, (e) => e.stringField(1, key).stringField(2, value));
  }
  for (const u of m.unknown) w.raw(u);
  return w.finish();
}

function encodeGraph(w: Writer, g: OnnxGraph): void {
  for (const n of g.nodes) w.message(1, (nw) => encodeNode(nw, n));
  if (g.name) w.stringField(2, g.name);
  for (const t of g.initializers) w.message(5, (tw) => encodeTensor(tw, t));
  for (const v of g.inputs) w.message(11, (vw) => encodeValueInfo(vw, v));
  for (const v of g.outputs) w.message(12, (vw) => encodeValueInfo(vw, v));
  for (const v of g.valueInfo) w.message(13, (vw) => encodeValueInfo(vw, v));
  for (const u of g.unknown) w.raw(u);
}

function encodeNode(w: Writer, n: OnnxNode): void {
  for (const i of n.inputs) w.stringField(1, i);
  for (const o of n.outputs) w.stringField(2, o);
  if (n.name) w.stringField(3, n.name);
  w.stringField(4, n.opType);
  for (const a of n.attributes) {
    if (a.type === 'other') w.bytesField(5, a.rawBytes);
    else w.message(5, (aw) => encodeAttribute(aw, a));
  }
  if (n.domain) w.stringField(7, n.domain);
}

function encodeAttribute(w: Writer, a: Exclude<OnnxAttribute, { type: 'other' }>): void {
  w.stringField(1, a.name);
  switch (a.type) {
    case 'float':
      w.floatField(2, a.f).int64Field(20, ATTR.FLOAT);
      break;
    case 'int':
      w.int64Field(3, a.i).int64Field(20, ATTR.INT);
      break;
    case 'string':
      w.stringField(4, a.s).int64Field(20, ATTR.STRING);
      break;
    case 'floats':
      w.packedFloat(7, a.floats).int64Field(20, ATTR.FLOATS);
      break;
    case 'ints':
      w.packedInt64(8, a.ints).int64Field(20, ATTR.INTS);
      break;
    case 'tensor':
      w.message(5, (tw) => encodeTensor(tw, a.t)).int64Field(20, ATTR.TENSOR);
      break;
    case 'graph':
      w.message(6, (gw) => encodeGraph(gw, a.g)).int64Field(20, ATTR.GRAPH);
      break;
  }
}

export function encodeTensor(w: Writer, t: OnnxTensor): void {
  w.packedInt64(1, t.dims);
  w.int64Field(2, t.dataType);
  if (t.name) w.stringField(8, t.name);
  w.bytesField(9, t.raw);
  for (const u of t.unknown) w.raw(u);
}

function encodeValueInfo(w: Writer, v: OnnxValueInfo): void {
  w.stringField(1, v.name);
  w.message(2, (tp) =>
    tp.message(1, (tt) => {
      tt.int64Field(1, v.elemType);
      if (v.shape) {
        tt.message(2, (sh) => {
          for (const d of v.shape ?? []) {
            sh.message(1, (dw) => {
              if (typeof d === 'number') dw.int64Field(1, d);
              else if (typeof d === 'string') dw.stringField(2, d);
            });
          }
        });
      }
    }),
  );
}

// ---------- helpers ----------

export function attr(node: OnnxNode, name: string): OnnxAttribute | undefined {
  return node.attributes.find((a) => a.name === name);
}

export function intAttr(node: OnnxNode, name: string, fallback: number): number {
  const a = attr(node, name);
  return a?.type === 'int' ? a.i : fallback;
}

export function intsAttr(node: OnnxNode, name: string, fallback: number[]): number[] {
  const a = attr(node, name);
  return a?.type === 'ints' ? a.ints : fallback;
}

export function floatAttr(node: OnnxNode, name: string, fallback: number): number {
  const a = attr(node, name);
  return a?.type === 'float' ? a.f : fallback;
}

export function stringAttr(node: OnnxNode, name: string, fallback: string): string {
  const a = attr(node, name);
  return a?.type === 'string' ? a.s : fallback;
}

/** A float32 initializer as a Float32Array (copied, so it is aligned). */
export function tensorFloats(t: OnnxTensor): Float32Array {
  if (t.dataType !== DataType.FLOAT) throw new Error(`ONNX: tensor ${t.name} is not float32`);
  const out = new Float32Array(t.raw.length / 4);
  new Uint8Array(out.buffer).set(t.raw);
  return out;
}

export function tensorInt64s(t: OnnxTensor): number[] {
  if (t.dataType !== DataType.INT64) throw new Error(`ONNX: tensor ${t.name} is not int64`);
  const copy = new Uint8Array(t.raw);
  return Array.from(new BigInt64Array(copy.buffer), (v) => Number(v));
}

export function floatTensor(name: string, dims: number[], data: Float32Array): OnnxTensor {
  return {
    name,
    dims,
    dataType: DataType.FLOAT,
    raw: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    unknown: [],
  };
}

export function int64Tensor(name: string, dims: number[], data: number[]): OnnxTensor {
  return {
    name,
    dims,
    dataType: DataType.INT64,
    raw: new Uint8Array(BigInt64Array.from(data.map(BigInt)).buffer),
    unknown: [],
  };
}
