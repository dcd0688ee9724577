// The audit log: append-only (triggers refuse UPDATE/DELETE) and hash-chained, so a gap or an edit shows.

import crypto from 'node:crypto';
import os from 'node:os';
import type { Db } from './connection.ts';
import { nowIso } from './clock.ts';

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  action: string;
  details: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

const GENESIS = '0'.repeat(64);

function currentActor(): string {
  try {
    return os.userInfo().username || 'unknown';
  } catch {
    return 'unknown';
  }
}

function entryHash(prevHash: string, at: string, actor: string, action: string, details: string): string {
  return crypto
    .createHash('sha256')
    .update(JSON.stringify([prevHash, at, actor, action, details]))
    .digest('hex');
}

export class AuditRepo {
  private readonly last;
  private readonly insert;
  constructor(private readonly db: Db) {
    this.last = db.prepare<[], { hash: string }>('SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1');
    this.insert = db.prepare(
      'INSERT INTO audit_log (at, actor, action, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)',
    );
  }

  /** Appends one entry; call inside the transaction that makes the change it records. */
  append(action: string, details: Record<string, unknown>, actor: string = currentActor()): void {
    const prev = this.last.get()?.hash ?? GENESIS;
    const at = nowIso();
    const json = JSON.stringify(details);
    this.insert.run(at, actor, action, json, prev, entryHash(prev, at, actor, action, json));
  }

  /** The oldest entries first (tests and small projects). */
  list(limit = 1000): AuditEntry[] {
    return this.db
      .prepare<[number], RawEntry>('SELECT * FROM audit_log ORDER BY id LIMIT ?')
      .all(limit)
      .map(toEntry);
  }

  /** The newest `limit` entries, newest first, however long the trail is. */
  latest(limit: number): AuditEntry[] {
    return this.db
      .prepare<[number], RawEntry>('SELECT * FROM audit_log ORDER BY id DESC LIMIT ?')
      .all(limit)
      .map(toEntry);
  }

  /** Every entry, oldest first, streamed: an export of any length. */
  *iterate(): Generator<AuditEntry> {
    for (const r of this.db.prepare<[], RawEntry>('SELECT * FROM audit_log ORDER BY id').iterate())
      yield toEntry(r);
  }

  count(): number {
    return this.db.prepare<[], number>('SELECT count(*) FROM audit_log').pluck().get() as number;
  }

  /**
   * Recomputes the chain; returns the id of the first broken entry, or null when intact. Entries checked
   * before are not hashed again unless the schema changed (the triggers that keep the log append-only are
   * schema: dropping them to edit an entry is seen); the last checked entry must still be the same row.
   */
  verify(): number | null {
    const schema = this.db.pragma('schema_version', { simple: true }) as number;
    const from = this.verified && this.verified.schema === schema ? this.verified : null;
    if (from) {
      const still = this.db
        .prepare<[number], { hash: string }>('SELECT hash FROM audit_log WHERE id = ?')
        .get(from.id);
      if (still?.hash !== from.hash) return this.verifyFrom(null, schema);
    }
    return this.verifyFrom(from, schema);
  }

  private verified: { id: number; hash: string; schema: number } | null = null;

  private verifyFrom(from: { id: number; hash: string } | null, schema: number): number | null {
    let prev = from?.hash ?? GENESIS;
    let lastId = from?.id ?? 0;
    const rows = this.db
      .prepare<[number], RawEntry>('SELECT * FROM audit_log WHERE id > ? ORDER BY id')
      .iterate(lastId);
    for (const r of rows) {
      if (r.prev_hash !== prev || entryHash(prev, r.at, r.actor, r.action, r.details) !== r.hash) {
        this.verified = null;
        return r.id;
      }
      prev = r.hash;
      lastId = r.id;
    }
    this.verified = lastId ? { id: lastId, hash: prev, schema } : null;
    return null;
  }
}

interface RawEntry {
  id: number;
  at: string;
  actor: string;
  action: string;
  details: string;
  prev_hash: string;
  hash: string;
}

function toEntry(r: RawEntry): AuditEntry {
  return {
    id: r.id,
    at: r.at,
    actor: r.actor,
    action: r.action,
    details: JSON.parse(r.details) as Record<string, unknown>,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}
