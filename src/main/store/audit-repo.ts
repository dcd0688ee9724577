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

  list(limit = 1000): AuditEntry[] {
    const rows = this.db
      .prepare<
        [number],
        {
          id: number;
          at: string;
          actor: string;
          action: string;
          details: string;
          prev_hash: string;
          hash: string;
        }
      >('SELECT * FROM audit_log ORDER BY id LIMIT ?')
      .all(limit);
    return rows.map((r) => ({
      id: r.id,
      at: r.at,
      actor: r.actor,
      action: r.action,
      details: JSON.parse(r.details) as Record<string, unknown>,
      prevHash: r.prev_hash,
      hash: r.hash,
    }));
  }

  /** Recomputes the chain; returns the id of the first broken entry, or null when intact. */
  verify(): number | null {
    let prev = GENESIS;
    const rows = this.db
      .prepare<
        [],
        {
          id: number;
          at: string;
          actor: string;
          action: string;
          details: string;
          prev_hash: string;
          hash: string;
        }
      >('SELECT * FROM audit_log ORDER BY id')
      .iterate();
    for (const r of rows) {
      if (r.prev_hash !== prev || entryHash(prev, r.at, r.actor, r.action, r.details) !== r.hash) return r.id;
      prev = r.hash;
    }
    return null;
  }
}
