// Feature vectors keyed by image content × backbone × view, stored as little-endian float32 blobs.

import type { Db } from './connection.ts';
import { nowIso } from './clock.ts';

export class FeatureCache {
  private readonly getStmt;
  private readonly putStmt;
  constructor(private readonly db: Db) {
    this.getStmt = db.prepare<[string, string, string], { dim: number; vector: Buffer }>(
      'SELECT dim, vector FROM feature_cache WHERE sha256 = ? AND backbone_id = ? AND view = ?',
    );
    this.putStmt = db.prepare(
      'INSERT OR REPLACE INTO feature_cache (sha256, backbone_id, view, dim, vector, created_at) VALUES (?, ?, ?, ?, ?, ?)',
    );
  }

  get(sha256: string, backboneId: string, view = 'eval'): Float32Array | null {
    const r = this.getStmt.get(sha256, backboneId, view);
    if (!r) return null;
    // Copy into an aligned buffer: SQLite's blob may sit at any byte offset.
    const out = new Float32Array(r.dim);
    new Uint8Array(out.buffer).set(r.vector);
    return out;
  }

  has(sha256: string, backboneId: string, view = 'eval'): boolean {
    return this.getStmt.get(sha256, backboneId, view) !== undefined;
  }

  put(sha256: string, backboneId: string, vector: Float32Array, view = 'eval'): void {
    this.putStmt.run(
      sha256,
      backboneId,
      view,
      vector.length,
      Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength),
      nowIso(),
    );
  }

  /** Stores many vectors in one transaction (one fsync instead of one per image). */
  putMany(items: { sha256: string; vector: Float32Array }[], backboneId: string, view = 'eval'): void {
    this.db.transaction(() => {
      for (const it of items) this.put(it.sha256, backboneId, it.vector, view);
    })();
  }

  count(backboneId?: string): number {
    const r = backboneId
      ? this.db
          .prepare<[string], { n: number }>('SELECT count(*) AS n FROM feature_cache WHERE backbone_id = ?')
          .get(backboneId)
      : this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM feature_cache').get();
    return r?.n ?? 0;
  }
}
