// A project: one SQLite file and the repositories over it.

import fs from 'node:fs';
import path from 'node:path';
import { assertSound } from './corruption.ts';
import { assertWritable, openDatabase, type Db, type OpenOptions } from './connection.ts';
import { AuditRepo } from './audit-repo.ts';
import { FeatureCache } from './feature-cache.ts';
import { ImagesRepo } from './images-repo.ts';
import { JobsRepo } from './jobs-repo.ts';
import { ModelsRepo } from './models-repo.ts';
import { BatchRepo } from './batch-repo.ts';
import { EvaluationsRepo } from './evaluations-repo.ts';
import { nowIso } from './clock.ts';
import { acquireProjectLock, type LockHolder, type ProjectLock } from './project-lock.ts';
import { PERCENTILE_WINDOW, type HighBitDepth } from '../../shared/domain.ts';
import { FewShotError } from '../../shared/errors.ts';

export const PROJECT_EXTENSION = '.fsl';

export class Project {
  readonly images: ImagesRepo;
  readonly features: FeatureCache;
  readonly jobs: JobsRepo;
  readonly audit: AuditRepo;
  readonly models: ModelsRepo;
  readonly batches: BatchRepo;
  readonly evaluations: EvaluationsRepo;
  private constructor(
    readonly file: string,
    readonly db: Db,
    /** The write lock (see project-lock.ts); null for a read-only open or a job worker's connection. */
    private readonly lock: ProjectLock | null = null,
  ) {
    this.images = new ImagesRepo(db);
    this.features = new FeatureCache(db);
    this.jobs = new JobsRepo(db);
    this.audit = new AuditRepo(db);
    this.models = new ModelsRepo(db);
    this.batches = new BatchRepo(db);
    this.evaluations = new EvaluationsRepo(db);
  }

  static create(file: string, name?: string): Project {
    assertWritable(file, fs.existsSync(file));
    const lock = acquireProjectLock(file);
    let db: Db;
    try {
      db = openDatabase(file, { create: true });
    } catch (e) {
      lock.release();
      throw e;
    }
    const p = new Project(file, db, lock);
    try {
      db.transaction(() => {
        const meta = db.prepare('INSERT OR REPLACE INTO project_meta (key, value) VALUES (?, ?)');
        meta.run('name', name ?? path.basename(file, path.extname(file)));
        meta.run('created_at', nowIso());
        p.audit.append('project.create', { name: name ?? path.basename(file) });
        p.recordTakeover();
      })();
    } catch (e) {
      p.close();
      throw e;
    }
    return p;
  }

  /**
   * `check`: run SQLite's quick check first, so a damaged file is reported before anything uses it.
   * `worker`: a second connection for a job's worker, opened while the app holds the project: it leaves
   * the running jobs alone (one of them is its own) and shares the app's write lock.
   * `readonly`: takes no lock, so it works while another program has the project open for writing.
   */
  static open(
    file: string,
    options: Omit<OpenOptions, 'create'> & { check?: boolean; worker?: boolean } = {},
  ): Project {
    if (options.check && fs.existsSync(file)) {
      // Read-only storage is said plainly before the check, which cannot open a WAL file there either.
      if (!options.readonly) assertWritable(file, true);
      assertSound(file);
    }
    if (options.readonly || options.worker) return new Project(file, openDatabase(file, options));
    if (!fs.existsSync(file)) throw new FewShotError('NOT_FOUND', `No project file at ${file}.`);
    // Before anything is written (a migration, the interrupted jobs): a live holder is PROJECT_IN_USE.
    assertWritable(file, true);
    const lock = acquireProjectLock(file);
    let p: Project;
    try {
      p = new Project(file, openDatabase(file, options), lock);
    } catch (e) {
      lock.release();
      throw e;
    }
    try {
      // Jobs left running by a process that died; a second open in this process leaves its live ones be.
      if (!lock.shared) p.jobs.markInterrupted();
      if (lock.takenOver) p.db.transaction(() => p.recordTakeover())();
    } catch (e) {
      p.close();
      throw e;
    }
    return p;
  }

  /** A stale lock replaced on open goes into the audit trail: whose it was and since when. */
  private recordTakeover(): void {
    const from: LockHolder | null = this.lock?.takenOver ?? null;
    if (from)
      this.audit.append('project.lock.takeover', {
        pid: from.pid,
        host: from.host,
        user: from.user,
        program: from.program,
        since: from.started,
      });
  }

  meta(key: string): string | null {
    return (
      this.db.prepare<[string], { value: string }>('SELECT value FROM project_meta WHERE key = ?').get(key)
        ?.value ?? null
    );
  }

  /** How 16-bit PNG/TIFF images become 8-bit for this project's features, training and previews. */
  highBitDepth(): HighBitDepth {
    return this.meta('decode.highBitDepth') === 'percentile' ? 'percentile' : 'full';
  }

  setHighBitDepth(policy: HighBitDepth): void {
    if (policy === this.highBitDepth()) return;
    this.db.transaction(() => {
      this.db
        .prepare('INSERT OR REPLACE INTO project_meta (key, value) VALUES (?, ?)')
        .run('decode.highBitDepth', policy);
      this.audit.append('settings.highBitDepth', { policy });
    })();
  }

  /** The feature-cache view for the evaluation crop under the current policy (features of both coexist). */
  featureView(): string {
    const { low, high } = PERCENTILE_WINDOW;
    return this.highBitDepth() === 'full' ? 'eval' : `eval+p${low}-${high}`;
  }

  /** An online copy of the project file (SQLite's backup API): safe while the project is in use. */
  async backup(dest: string): Promise<void> {
    await this.db.backup(dest);
  }

  /** The last checkpoint saved under `key`, or null. */
  checkpoint(key: string): { epoch: number; state: Buffer } | null {
    return (
      this.db
        .prepare<[string], { epoch: number; state: Buffer }>(
          'SELECT epoch, state FROM checkpoints WHERE key = ?',
        )
        .get(key) ?? null
    );
  }

  saveCheckpoint(key: string, epoch: number, state: Buffer): void {
    this.db
      .prepare('INSERT OR REPLACE INTO checkpoints (key, epoch, state, updated_at) VALUES (?, ?, ?, ?)')
      .run(key, epoch, state, nowIso());
  }

  dropCheckpoint(key: string): void {
    this.db.prepare('DELETE FROM checkpoints WHERE key = ?').run(key);
  }

  close(): void {
    if (this.db.open) this.db.close();
    this.lock?.release();
  }
}
