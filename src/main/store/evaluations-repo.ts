// Stored evaluations of a model: the Review screen and the report reuse one until the data it was made
// on (its fingerprint is part of the key) or the protocol changes. A model never changes after training.

import crypto from 'node:crypto';
import type { Db } from './connection.ts';
import { nowIso } from './clock.ts';

export interface EvaluationKey {
  modelId: string;
  protocol: unknown;
  seed: number;
  groupAware: boolean;
  dataFingerprint: string;
}

export interface StoredEvaluation<T> {
  id: string;
  result: T;
  jobId: string | null;
  createdAt: string;
}

function keyOf(k: EvaluationKey): string {
  return crypto
    .createHash('sha256')
    .update(JSON.stringify([k.protocol, k.seed, k.groupAware, k.dataFingerprint]))
    .digest('hex');
}

export class EvaluationsRepo {
  constructor(private readonly db: Db) {}

  get<T>(k: EvaluationKey): StoredEvaluation<T> | null {
    const r = this.db
      .prepare<[string, string], { id: string; result: string; job_id: string | null; created_at: string }>(
        'SELECT id, result, job_id, created_at FROM evaluations WHERE model_id = ? AND key = ?',
      )
      .get(k.modelId, keyOf(k));
    return r
      ? { id: r.id, result: JSON.parse(r.result) as T, jobId: r.job_id, createdAt: r.created_at }
      : null;
  }

  /** Stores (or replaces) the evaluation made under this key. */
  put(k: EvaluationKey, result: unknown, jobId: string | null): string {
    const id = crypto.randomUUID();
    this.db
      .prepare(
        `INSERT INTO evaluations (id, model_id, key, protocol, seed, group_aware, data_fingerprint, result, job_id, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (model_id, key) DO UPDATE SET id = excluded.id, result = excluded.result,
           job_id = excluded.job_id, created_at = excluded.created_at`,
      )
      .run(
        id,
        k.modelId,
        keyOf(k),
        JSON.stringify(k.protocol),
        k.seed,
        k.groupAware ? 1 : 0,
        k.dataFingerprint,
        JSON.stringify(result),
        jobId,
        nowIso(),
      );
    return id;
  }

  /** Removes every stored evaluation of a model; returns how many went. */
  deleteOfModel(modelId: string): number {
    return this.db.prepare('DELETE FROM evaluations WHERE model_id = ?').run(modelId).changes;
  }

  count(modelId: string): number {
    return this.db
      .prepare<[string], number>('SELECT count(*) FROM evaluations WHERE model_id = ?')
      .pluck()
      .get(modelId) as number;
  }
}
