// Classes, import roots and images: the labelled data set of a project.

import type { Db } from './connection.ts';
import { nowIso } from './clock.ts';

export interface ImageRecord {
  id: number;
  sha256: string;
  rootId: number;
  relPath: string;
  fileSize: number;
  width: number;
  height: number;
  format: string;
  className: string | null;
  groupKey: string | null;
  excluded: boolean;
  addedAt: string;
}

export interface NewImage {
  sha256: string;
  rootId: number;
  relPath: string;
  fileSize: number;
  width: number;
  height: number;
  format: string;
  classId: number | null;
  groupKey: string | null;
  bytes: Buffer;
}

interface RawImage {
  id: number;
  sha256: string;
  root_id: number;
  rel_path: string;
  file_size: number;
  width: number;
  height: number;
  format: string;
  class_name: string | null;
  group_key: string | null;
  excluded: number;
  added_at: string;
}

const SELECT_IMAGE = `SELECT i.id, i.sha256, i.root_id, i.rel_path, i.file_size, i.width, i.height, i.format,
  c.name AS class_name, i.group_key, i.excluded, i.added_at FROM images i LEFT JOIN classes c ON c.id = i.class_id`;

function toImage(r: RawImage): ImageRecord {
  return {
    id: r.id,
    sha256: r.sha256,
    rootId: r.root_id,
    relPath: r.rel_path,
    fileSize: r.file_size,
    width: r.width,
    height: r.height,
    format: r.format,
    className: r.class_name,
    groupKey: r.group_key,
    excluded: r.excluded === 1,
    addedAt: r.added_at,
  };
}

export interface ImageFilter {
  className?: string | null;
  excluded?: boolean;
  /** Part of the file's path relative to its import folder, case-insensitive. */
  search?: string;
  /** Only these images. */
  ids?: number[];
}

function filterSql(filter: ImageFilter): { where: string; args: (string | number)[] } {
  const where: string[] = [];
  const args: (string | number)[] = [];
  if (filter.className === null) where.push('i.class_id IS NULL');
  else if (filter.className !== undefined) {
    where.push('c.name = ?');
    args.push(filter.className);
  }
  if (filter.excluded !== undefined) {
    where.push('i.excluded = ?');
    args.push(filter.excluded ? 1 : 0);
  }
  const search = filter.search?.trim();
  if (search) {
    // instr() on lower(): no LIKE wildcards to escape in file names such as "50%_a.png".
    where.push('instr(lower(i.rel_path), ?) > 0');
    args.push(search.toLowerCase());
  }
  if (filter.ids) {
    const ids = filter.ids.filter((id) => Number.isSafeInteger(id));
    where.push(ids.length ? `i.id IN (${ids.map(() => '?').join(',')})` : '0');
    args.push(...ids);
  }
  return { where: where.length ? ` WHERE ${where.join(' AND ')}` : '', args };
}

export class ImagesRepo {
  private readonly bySha;
  private readonly insertBlob;
  private readonly insertImage;
  private readonly classByName;
  private readonly insertClass;
  constructor(private readonly db: Db) {
    this.bySha = db.prepare<[string], { id: number; root_id: number; rel_path: string; format: string }>(
      'SELECT id, root_id, rel_path, format FROM images WHERE sha256 = ?',
    );
    this.insertBlob = db.prepare('INSERT OR IGNORE INTO image_blobs (sha256, bytes) VALUES (?, ?)');
    this.insertImage = db.prepare(`INSERT INTO images
      (sha256, root_id, rel_path, file_size, width, height, format, class_id, group_key, added_at)
      VALUES (@sha256, @rootId, @relPath, @fileSize, @width, @height, @format, @classId, @groupKey, @addedAt)`);
    this.classByName = db.prepare<[string], { id: number }>('SELECT id FROM classes WHERE name = ?');
    this.insertClass = db.prepare('INSERT INTO classes (name, created_at) VALUES (?, ?)');
  }

  ensureRoot(absPath: string): number {
    this.db
      .prepare('INSERT OR IGNORE INTO import_roots (path, added_at) VALUES (?, ?)')
      .run(absPath, nowIso());
    return (
      this.db
        .prepare<[string], { id: number }>('SELECT id FROM import_roots WHERE path = ?')
        .get(absPath) as { id: number }
    ).id;
  }

  rootPath(rootId: number): string | null {
    return (
      this.db.prepare<[number], { path: string }>('SELECT path FROM import_roots WHERE id = ?').get(rootId)
        ?.path ?? null
    );
  }

  ensureClass(name: string): number {
    const found = this.classByName.get(name);
    if (found) return found.id;
    return Number(this.insertClass.run(name, nowIso()).lastInsertRowid);
  }

  classes(): { id: number; name: string; images: number; excluded: number }[] {
    return this.db
      .prepare<[], { id: number; name: string; images: number; excluded: number }>(
        `SELECT c.id, c.name, count(i.id) AS images, coalesce(sum(i.excluded), 0) AS excluded
         FROM classes c LEFT JOIN images i ON i.class_id = c.id GROUP BY c.id ORDER BY c.name`,
      )
      .all();
  }

  findBySha(sha256: string): { id: number; rootId: number; relPath: string; format: string } | null {
    const r = this.bySha.get(sha256);
    return r ? { id: r.id, rootId: r.root_id, relPath: r.rel_path, format: r.format } : null;
  }

  /** A whole multi-page file imported earlier becomes the first of its pages (same pixels, same labels). */
  becomeFirstPage(id: number, relPath: string, groupKey: string): void {
    this.db
      .prepare('UPDATE images SET rel_path = ?, group_key = coalesce(group_key, ?) WHERE id = ?')
      .run(relPath, groupKey, id);
  }

  /** Inserts the image and its bytes; the caller wraps batches of these in one transaction. */
  add(img: NewImage): number {
    this.insertBlob.run(img.sha256, img.bytes);
    return Number(
      this.insertImage.run({
        sha256: img.sha256,
        rootId: img.rootId,
        relPath: img.relPath,
        fileSize: img.fileSize,
        width: img.width,
        height: img.height,
        format: img.format,
        classId: img.classId,
        groupKey: img.groupKey,
        addedAt: nowIso(),
      }).lastInsertRowid,
    );
  }

  setGroup(rootId: number, relPath: string, groupKey: string): boolean {
    return (
      this.db
        .prepare('UPDATE images SET group_key = ? WHERE root_id = ? AND rel_path = ?')
        .run(groupKey, rootId, relPath).changes > 0
    );
  }

  get(id: number): ImageRecord | null {
    const r = this.db.prepare<[number], RawImage>(`${SELECT_IMAGE} WHERE i.id = ?`).get(id);
    return r ? toImage(r) : null;
  }

  /** All images, or only the labelled, included ones. */
  list(options: { includeExcluded?: boolean; labelledOnly?: boolean } = {}): ImageRecord[] {
    const where: string[] = [];
    if (!options.includeExcluded) where.push('i.excluded = 0');
    if (options.labelledOnly) where.push('i.class_id IS NOT NULL');
    const sql = `${SELECT_IMAGE}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY i.id`;
    return this.db.prepare<[], RawImage>(sql).all().map(toImage);
  }

  /** A page of images, optionally of one class (null: unlabelled), one excluded state, a path search. */
  page(filter: ImageFilter, offset: number, limit: number): { total: number; images: ImageRecord[] } {
    const { where, args } = filterSql(filter);
    const total = (
      this.db
        .prepare(`SELECT count(*) AS n FROM images i LEFT JOIN classes c ON c.id = i.class_id${where}`)
        .get(...args) as { n: number }
    ).n;
    const rows = this.db
      .prepare<(string | number)[], RawImage>(
        `${SELECT_IMAGE}${where} ORDER BY c.name, i.rel_path LIMIT ? OFFSET ?`,
      )
      .all(...args, limit, offset);
    return { total, images: rows.map(toImage) };
  }

  /** The ids of every image the filter selects, in page order (a select-all over all pages). */
  ids(filter: ImageFilter): number[] {
    const { where, args } = filterSql(filter);
    return this.db
      .prepare<(string | number)[], number>(
        `SELECT i.id FROM images i LEFT JOIN classes c ON c.id = i.class_id${where} ORDER BY c.name, i.rel_path`,
      )
      .pluck()
      .all(...args);
  }

  /** Moves images to a class (created when new), or back to unlabelled (null); returns how many changed. */
  relabel(ids: number[], className: string | null): number {
    if (className === null) {
      const clear = this.db.prepare(
        'UPDATE images SET class_id = NULL WHERE id = ? AND class_id IS NOT NULL',
      );
      return ids.reduce((n, id) => n + clear.run(id).changes, 0);
    }
    const classId = this.ensureClass(className);
    const stmt = this.db.prepare(
      'UPDATE images SET class_id = ? WHERE id = ? AND (class_id IS NULL OR class_id != ?)',
    );
    return ids.reduce((n, id) => n + stmt.run(classId, id, classId).changes, 0);
  }

  setExcluded(ids: number[], excluded: boolean): number {
    const stmt = this.db.prepare('UPDATE images SET excluded = ? WHERE id = ? AND excluded != ?');
    return ids.reduce((n, id) => n + stmt.run(excluded ? 1 : 0, id, excluded ? 1 : 0).changes, 0);
  }

  groupCount(): number {
    return (
      this.db
        .prepare('SELECT count(DISTINCT group_key) AS n FROM images WHERE group_key IS NOT NULL')
        .get() as { n: number }
    ).n;
  }

  /** Files refused by the most recent import. */
  lastRejections(): { relPath: string; code: string; message: string }[] {
    return this.db
      .prepare<[], { rel_path: string; code: string; message: string }>(
        `SELECT rel_path, code, message FROM import_rejections WHERE job_id = (
           SELECT id FROM jobs WHERE kind = 'import' ORDER BY created_at DESC LIMIT 1) ORDER BY rel_path`,
      )
      .all()
      .map((r) => ({ relPath: r.rel_path, code: r.code, message: r.message }));
  }

  count(): number {
    return (this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM images').get() as { n: number }).n;
  }

  bytes(sha256: string): Buffer | null {
    return (
      this.db
        .prepare<[string], { bytes: Buffer }>('SELECT bytes FROM image_blobs WHERE sha256 = ?')
        .get(sha256)?.bytes ?? null
    );
  }

  addRejection(jobId: string, rootId: number, relPath: string, code: string, message: string): void {
    this.db
      .prepare(
        'INSERT INTO import_rejections (job_id, root_id, rel_path, code, message) VALUES (?, ?, ?, ?, ?)',
      )
      .run(jobId, rootId, relPath, code, message);
  }
}
