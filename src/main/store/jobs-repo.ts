// Long jobs as rows: one id from the request to the end, so a reloaded window, the command line and the
// audit trail all name the same job. A restarted app re-reads their state from here.

import crypto from 'node:crypto';
import type { JobKind, JobStatus } from '../../shared/jobs.ts';
import { toErrorData, type ErrorData } from '../../shared/errors.ts';
import type { Db } from './connection.ts';
import { nowIso } from './clock.ts';

export type { JobStatus };

export interface JobRow {
  id: string;
  kind: JobKind;
  status: JobStatus;
  params: unknown;
  progress: unknown;
  result: unknown;
  error: ErrorData | null;
  createdAt: string;
  updatedAt: string;
}

interface RawJob {
  id: string;
  kind: JobKind;
  status: JobStatus;
  params: string;
  progress: string | null;
  result: string | null;
  error: string | null;
  created_at: string;
  updated_at: string;
}

function parse(s: string | null): unknown {
  return s === null ? null : JSON.parse(s);
}

export class JobsRepo {
  constructor(private readonly db: Db) {}

  create(
    kind: JobKind,
    params: unknown,
    options: { id?: string; status?: Extract<JobStatus, 'queued' | 'running'> } = {},
  ): string {
    const id = options.id ?? crypto.randomUUID();
    const at = nowIso();
    this.db
      .prepare(
        'INSERT INTO jobs (id, kind, status, params, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .run(id, kind, options.status ?? 'running', JSON.stringify(params), at, at);
    return id;
  }

  /** A queued job's worker has begun. */
  start(id: string): void {
    this.db
      .prepare("UPDATE jobs SET status = 'running', updated_at = ? WHERE id = ? AND status = 'queued'")
      .run(nowIso(), id);
  }

  progress(id: string, progress: unknown): void {
    this.db
      .prepare('UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?')
      .run(JSON.stringify(progress), nowIso(), id);
  }

  /** Ends a job; a job that has already ended keeps its first ending (returns false). */
  finish(
    id: string,
    status: Exclude<JobStatus, 'queued' | 'running'>,
    result: unknown,
    error?: ErrorData,
  ): boolean {
    return (
      this.db
        .prepare(
          "UPDATE jobs SET status = ?, result = ?, error = ?, updated_at = ? WHERE id = ? AND status IN ('queued', 'running')",
        )
        .run(
          status,
          result === undefined ? null : JSON.stringify(result),
          error ? JSON.stringify(error) : null,
          nowIso(),
          id,
        ).changes > 0
    );
  }

  /**
   * Records a failure — 'cancelled' for a cancellation, 'failed' with the error's code otherwise. Never
   * throws, so the caller's error is the one reported.
   */
  fail(id: string, error: unknown, partialResult: unknown = null): void {
    const data = toErrorData(error);
    try {
      this.finish(id, data.code === 'CANCELLED' ? 'cancelled' : 'failed', partialResult, data);
    } catch {
      // The store cannot take the record now (a full disk): the next open marks the job interrupted.
    }
  }

  get(id: string): JobRow | null {
    const r = this.db.prepare<[string], RawJob>('SELECT * FROM jobs WHERE id = ?').get(id);
    return r ? toRow(r) : null;
  }

  /** Newest first. */
  list(limit = 100): JobRow[] {
    return this.db
      .prepare<[number], RawJob>('SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?')
      .all(limit)
      .map(toRow);
  }

  /** Jobs left 'running' by a process that died are marked failed, so nobody waits on them. */
  markInterrupted(): number {
    return this.db
      .prepare(
        "UPDATE jobs SET status = 'failed', error = ?, updated_at = ? WHERE status IN ('queued', 'running')",
      )
      .run(
        JSON.stringify({ code: 'CANCELLED', message: 'Interrupted: the app stopped while this job ran.' }),
        nowIso(),
      ).changes;
  }
}

function toRow(r: RawJob): JobRow {
  return {
    id: r.id,
    kind: r.kind,
    status: r.status,
    params: parse(r.params),
    progress: parse(r.progress),
    result: parse(r.result),
    error: parse(r.error) as JobRow['error'],
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}
