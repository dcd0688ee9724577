// A minimal protocol-buffers wire reader and writer: just what the ONNX codec needs.

export class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.buf.length) throw new Error('protobuf: truncated varint');
      const b = this.buf[this.pos++] as number;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 70n) throw new Error('protobuf: varint too long');
    }
  }

  /** A varint that fits in a JS number (tags, lengths, enums). */
  uint(): number {
    // Fast path for one- and two-byte varints.
    const b0 = this.buf[this.pos];
    if (b0 !== undefined && b0 < 0x80) {
      this.pos++;
      return b0;
    }
    return Number(this.varint());
  }

  int64(): number {
    return Number(BigInt.asIntN(64, this.varint()));
  }

  bytes(): Uint8Array {
    const len = this.uint();
    if (this.pos + len > this.buf.length) throw new Error('protobuf: truncated bytes');
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  string(): string {
    return new TextDecoder().decode(this.bytes());
  }

  float(): number {
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }

  double(): number {
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0, true);
    this.pos += 8;
    return v;
  }

  /** Returns [field, wireType]. */
  tag(): [number, number] {
    const t = this.uint();
    return [t >>> 3, t & 7];
  }

  /** Skips a field and returns its raw encoding (tag included) so unknown fields survive a round trip. */
  skip(field: number, wire: number, start: number): Uint8Array {
    switch (wire) {
      case 0:
        this.varint();
        break;
      case 1:
        this.pos += 8;
        break;
      case 2: {
        const len = this.uint();
        this.pos += len;
        break;
      }
      case 5:
        this.pos += 4;
        break;
      default:
        throw new Error(`protobuf: unsupported wire type ${wire} (field ${field})`);
    }
    if (this.pos > this.buf.length) throw new Error('protobuf: truncated field');
    return this.buf.subarray(start, this.pos);
  }

  /** Repeated int64 field, packed or not. */
  int64s(wire: number, into: number[]): void {
    if (wire === 2) {
      const len = this.uint();
      const end = this.pos + len;
      while (this.pos < end) into.push(this.int64());
    } else into.push(this.int64());
  }

  floats(wire: number, into: number[]): void {
    if (wire === 2) {
      const len = this.uint();
      const end = this.pos + len;
      while (this.pos < end) into.push(this.float());
    } else into.push(this.float());
  }
}

export class Writer {
  private chunks: Uint8Array[] = [];
  private cur = new Uint8Array(1024);
  private len = 0;
  private total = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.cur.length) return;
    this.flushCur();
    this.cur = new Uint8Array(Math.max(1024, n));
  }

  private flushCur(): void {
    if (this.len > 0) this.chunks.push(this.cur.subarray(0, this.len));
    this.cur = new Uint8Array(1024);
    this.len = 0;
  }

  private byte(b: number): void {
    this.ensure(1);
    this.cur[this.len++] = b;
    this.total++;
  }

  varint(v: number | bigint): this {
    let x = BigInt.asUintN(64, BigInt(v));
    if (x < 0x80n) {
      this.byte(Number(x));
      return this;
    }
    while (x >= 0x80n) {
      this.byte(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.byte(Number(x));
    return this;
  }

  tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }

  raw(bytes: Uint8Array): this {
    if (bytes.length > 4096) {
      this.flushCur();
      this.chunks.push(bytes);
    } else {
      this.ensure(bytes.length);
      this.cur.set(bytes, this.len);
      this.len += bytes.length;
    }
    this.total += bytes.length;
    return this;
  }

  bytesField(field: number, bytes: Uint8Array): this {
    return this.tag(field, 2).varint(bytes.length).raw(bytes);
  }

  stringField(field: number, s: string): this {
    return this.bytesField(field, new TextEncoder().encode(s));
  }

  int64Field(field: number, v: number): this {
    return this.tag(field, 0).varint(BigInt(v));
  }

  floatField(field: number, v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    return this.tag(field, 5).raw(b);
  }

  packedInt64(field: number, vs: readonly number[]): this {
    if (vs.length === 0) return this;
    const w = new Writer();
    for (const v of vs) w.varint(BigInt(v));
    return this.bytesField(field, w.finish());
  }

  packedFloat(field: number, vs: readonly number[]): this {
    if (vs.length === 0) return this;
    const b = new Uint8Array(vs.length * 4);
    const dv = new DataView(b.buffer);
    vs.forEach((v, i) => dv.setFloat32(i * 4, v, true));
    return this.bytesField(field, b);
  }

  message(field: number, build: (w: Writer) => void): this {
    const w = new Writer();
    build(w);
    return this.bytesField(field, w.finish());
  }

  finish(): Uint8Array {
    this.flushCur();
    const out = new Uint8Array(this.total);
    let off = 0;
    for (const c of this.chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }
}
