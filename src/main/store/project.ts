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
import { PERCENTILE_WINDOW, type HighBitDepth } from '../../shared/domain.ts';

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
    const db = openDatabase(file, { create: true });
    const p = new Project(file, db);
    db.transaction(() => {
      const meta = db.prepare('INSERT OR REPLACE INTO project_meta (key, value) VALUES (?, ?)');
      meta.run('name', name ?? path.basename(file, path.extname(file)));
      meta.run('created_at', nowIso());
      p.audit.append('project.create', { name: name ?? path.basename(file) });
    })();
    return p;
  }

  /**
   * `check`: run SQLite's quick check first, so a damaged file is reported before anything uses it.
   * `worker`: a second connection for a job's worker, opened while the app holds the project: it leaves
   * the running jobs alone (one of them is its own).
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
    const p = new Project(file, openDatabase(file, options));
    if (!options.readonly && !options.worker) p.jobs.markInterrupted();
    return p;
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
  }
}
