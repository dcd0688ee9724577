// Trained models: everything needed to reproduce one (backbone and its hash, strategy, hyper-parameters,
// seed, classes, the exact training images, software versions) and the fitted artefact itself.

import crypto from 'node:crypto';
import type { Db } from './connection.ts';
import { nowIso } from './clock.ts';
import type { ModelRecord } from '../../shared/results.ts';

export type { ModelRecord };

interface Raw {
  id: string;
  name: string;
  backbone_id: string;
  backbone_sha256: string;
  strategy: string;
  params: string;
  seed: number;
  classes: string;
  training_set: string;
  metrics: string | null;
  software: string;
  artefact_sha256: string | null;
  job_id: string | null;
  created_at: string;
}

const COLUMNS =
  'id, name, backbone_id, backbone_sha256, strategy, params, seed, classes, training_set, metrics, software, artefact_sha256, job_id, created_at';

function toRecord(r: Raw): ModelRecord {
  return {
    id: r.id,
    name: r.name,
    backboneId: r.backbone_id,
    backboneSha256: r.backbone_sha256,
    strategy: r.strategy as ModelRecord['strategy'],
    params: JSON.parse(r.params) as Record<string, unknown>,
    seed: r.seed,
    classes: JSON.parse(r.classes) as string[],
    trainingSet: JSON.parse(r.training_set) as ModelRecord['trainingSet'],
    metrics: r.metrics === null ? null : (JSON.parse(r.metrics) as ModelRecord['metrics']),
    software: JSON.parse(r.software) as Record<string, string>,
    artefactSha256: r.artefact_sha256,
    jobId: r.job_id,
    createdAt: r.created_at,
  };
}

export type NewModel = Omit<ModelRecord, 'id' | 'createdAt' | 'artefactSha256'> & { artefact: Buffer };

export class ModelsRepo {
  constructor(private readonly db: Db) {}

  /** Inserts the model with its artefact in one statement: a model row never exists without its weights. */
  insert(m: NewModel): string {
    const id = crypto.randomUUID();
    const sha = crypto.createHash('sha256').update(m.artefact).digest('hex');
    this.db
      .prepare(
        `INSERT INTO models (id, name, backbone_id, backbone_sha256, strategy, params, seed, classes, training_set, metrics, software, artefact, artefact_sha256, job_id, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        id,
        m.name,
        m.backboneId,
        m.backboneSha256,
        m.strategy,
        JSON.stringify(m.params),
        m.seed,
        JSON.stringify(m.classes),
        JSON.stringify(m.trainingSet),
        m.metrics === null || m.metrics === undefined ? null : JSON.stringify(m.metrics),
        JSON.stringify(m.software),
        m.artefact,
        sha,
        m.jobId,
        nowIso(),
      );
    return id;
  }

  get(id: string): ModelRecord | null {
    const r = this.db.prepare<[string], Raw>(`SELECT ${COLUMNS} FROM models WHERE id = ?`).get(id);
    return r ? toRecord(r) : null;
  }

  /** Finds a model by its full id or a unique prefix of it (as the CLI prints short ids). */
  find(idOrPrefix: string): ModelRecord | null {
    const exact = this.get(idOrPrefix);
    if (exact) return exact;
    const rows = this.db
      .prepare<[string], Raw>(`SELECT ${COLUMNS} FROM models WHERE id LIKE ? || '%' LIMIT 2`)
      .all(idOrPrefix);
    return rows.length === 1 ? toRecord(rows[0] as Raw) : null;
  }

  artefact(id: string): Buffer | null {
    return (
      this.db
        .prepare<[string], { artefact: Buffer | null }>('SELECT artefact FROM models WHERE id = ?')
        .get(id)?.artefact ?? null
    );
  }

  /** Removes the model row and its artefact; what refers to it must be gone first (foreign keys). */
  delete(id: string): boolean {
    return this.db.prepare('DELETE FROM models WHERE id = ?').run(id).changes === 1;
  }

  list(): ModelRecord[] {
    return this.db
      .prepare<[], Raw>(`SELECT ${COLUMNS} FROM models ORDER BY created_at DESC`)
      .all()
      .map(toRecord);
  }
}
