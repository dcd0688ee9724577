// Batch classification runs and their per-file predictions. (run, path) is the primary key, so a resumed
// run can never write a file twice.

import crypto from 'node:crypto';
import type { Db } from './connection.ts';
import { nowIso } from './clock.ts';
import type { PredictionRow, PredictionStatus } from '../../shared/results.ts';

export type { PredictionRow, PredictionStatus };

export interface BatchRun {
  id: string;
  modelId: string;
  root: string;
  params: Record<string, unknown>;
  jobId: string | null;
  createdAt: string;
}

interface RawRun {
  id: string;
  model_id: string;
  root: string;
  params: string;
  job_id: string | null;
  created_at: string;
}

function toRun(r: RawRun): BatchRun {
  return {
    id: r.id,
    modelId: r.model_id,
    root: r.root,
    params: JSON.parse(r.params) as Record<string, unknown>,
    jobId: r.job_id,
    createdAt: r.created_at,
  };
}

interface RawPrediction {
  rel_path: string;
  status: PredictionStatus;
  predicted: string | null;
  confidence: number | null;
  probabilities: string | null;
  error_code: string | null;
  error_message: string | null;
}

function toPrediction(r: RawPrediction): PredictionRow {
  return {
    relPath: r.rel_path,
    status: r.status,
    predicted: r.predicted,
    confidence: r.confidence,
    probabilities: r.probabilities ? (JSON.parse(r.probabilities) as number[]) : null,
    errorCode: r.error_code,
    errorMessage: r.error_message,
  };
}

export class BatchRepo {
  private readonly has;
  private readonly insert;
  constructor(private readonly db: Db) {
    this.has = db.prepare<[string, string], { one: number }>(
      'SELECT 1 AS one FROM predictions WHERE run_id = ? AND rel_path = ?',
    );
    this.insert = db.prepare(
      `INSERT OR IGNORE INTO predictions (run_id, rel_path, status, predicted, confidence, probabilities, error_code, error_message)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  create(modelId: string, root: string, params: Record<string, unknown>, jobId: string): string {
    const id = crypto.randomUUID();
    this.db
      .prepare(
        'INSERT INTO batch_runs (id, model_id, root, params, job_id, created_at) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .run(id, modelId, root, JSON.stringify(params), jobId, nowIso());
    return id;
  }

  /** The latest run with these exact settings whose job did not finish: the one to resume. */
  unfinished(modelId: string, root: string, params: Record<string, unknown>): BatchRun | null {
    const r = this.db
      .prepare<[string, string, string], RawRun>(
        `SELECT b.* FROM batch_runs b LEFT JOIN jobs j ON j.id = b.job_id
         WHERE b.model_id = ? AND b.root = ? AND b.params = ? AND (j.status IS NULL OR j.status != 'done')
         ORDER BY b.created_at DESC LIMIT 1`,
      )
      .get(modelId, root, JSON.stringify(params));
    return r ? toRun(r) : null;
  }

  get(id: string): BatchRun | null {
    const r = this.db.prepare<[string], RawRun>('SELECT * FROM batch_runs WHERE id = ?').get(id);
    return r ? toRun(r) : null;
  }

  /** A run by a unique prefix of its id (as the CLI prints short ids). */
  find(prefix: string): BatchRun | null {
    const rows = this.db
      .prepare<[string], RawRun>("SELECT * FROM batch_runs WHERE id LIKE ? || '%' LIMIT 2")
      .all(prefix);
    return rows.length === 1 ? toRun(rows[0] as RawRun) : null;
  }

  /** Every run of a model, oldest first (what deleting the model takes with it). */
  ofModel(modelId: string): BatchRun[] {
    return this.db
      .prepare<[string], RawRun>('SELECT * FROM batch_runs WHERE model_id = ? ORDER BY created_at, rowid')
      .all(modelId)
      .map(toRun);
  }

  /** Removes a model's runs and their predictions; returns how many runs and predictions went. */
  deleteOfModel(modelId: string): { runs: number; predictions: number } {
    const predictions = this.db
      .prepare('DELETE FROM predictions WHERE run_id IN (SELECT id FROM batch_runs WHERE model_id = ?)')
      .run(modelId).changes;
    const runs = this.db.prepare('DELETE FROM batch_runs WHERE model_id = ?').run(modelId).changes;
    return { runs, predictions };
  }

  attachJob(runId: string, jobId: string): void {
    this.db.prepare('UPDATE batch_runs SET job_id = ? WHERE id = ?').run(jobId, runId);
  }

  done(runId: string, relPath: string): boolean {
    return this.has.get(runId, relPath) !== undefined;
  }

  add(runId: string, p: PredictionRow): void {
    this.insert.run(
      runId,
      p.relPath,
      p.status,
      p.predicted,
      p.confidence,
      p.probabilities ? JSON.stringify(p.probabilities) : null,
      p.errorCode,
      p.errorMessage,
    );
  }

  count(runId: string): number {
    return (
      this.db
        .prepare<[string], { n: number }>('SELECT count(*) AS n FROM predictions WHERE run_id = ?')
        .get(runId) as { n: number }
    ).n;
  }

  /** Predictions in path order, streamed. */
  *iterate(runId: string): Generator<PredictionRow> {
    const rows = this.db
      .prepare<[string], RawPrediction>('SELECT * FROM predictions WHERE run_id = ? ORDER BY rel_path')
      .iterate(runId);
    for (const r of rows) yield toPrediction(r);
  }

  /** A page of one run's predictions in path order, filtered in SQL, with the filter's total. */
  page(
    runId: string,
    filter: 'all' | 'uncertain' | 'error' | { predicted: string },
    offset: number,
    limit: number,
  ): { total: number; rows: PredictionRow[] } {
    let where = 'run_id = ?';
    const args: string[] = [runId];
    if (filter === 'uncertain' || filter === 'error') {
      where += ' AND status = ?';
      args.push(filter);
    } else if (filter !== 'all') {
      where += " AND predicted = ? AND status != 'error'";
      args.push(filter.predicted);
    }
    const total = this.db
      .prepare<string[], number>(`SELECT count(*) FROM predictions WHERE ${where}`)
      .pluck()
      .get(...args) as number;
    const rows = this.db
      .prepare<(string | number)[], RawPrediction>(
        `SELECT * FROM predictions WHERE ${where} ORDER BY rel_path LIMIT ? OFFSET ?`,
      )
      .all(...args, limit, offset)
      .map(toPrediction);
    return { total, rows };
  }

  /** Every run, newest first, with its job's status and counts per status and predicted class. */
  list(limit = 200): (BatchRun & { status: string | null; counts: ReturnType<BatchRepo['summary']> })[] {
    return this.db
      .prepare<[number], RawRun & { status: string | null }>(
        `SELECT b.*, j.status AS status FROM batch_runs b LEFT JOIN jobs j ON j.id = b.job_id
         ORDER BY b.created_at DESC, b.rowid DESC LIMIT ?`,
      )
      .all(limit)
      .map((r) => ({ ...toRun(r), status: r.status, counts: this.summary(r.id) }));
  }

  summary(runId: string): { status: PredictionStatus; predicted: string | null; n: number }[] {
    return this.db
      .prepare<[string], { status: PredictionStatus; predicted: string | null; n: number }>(
        'SELECT status, predicted, count(*) AS n FROM predictions WHERE run_id = ? GROUP BY status, predicted ORDER BY status, predicted',
      )
      .all(runId);
  }
}
