// Imports a folder into a project: streaming, idempotent (content hash), chunked transactions, and a
// typed reason for every file that could not be imported. One bad file never stops the import.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ImportProgress, ImportSummary, RejectCode, RejectedFile } from '../../../shared/domain.ts';
import { FewShotError } from '../../../shared/errors.ts';
import type { Project } from '../../store/project.ts';
import {
  DEFAULT_LIMITS,
  hasSeparablePages,
  type DecodeLimits,
  type ImageInfo,
  type PageImage,
} from '../image/decode.ts';
import { DecodePool } from '../image/decode-pool.ts';
import { readGroupsCsv } from './groups.ts';
import { scanFolder, type ScannedFile } from './scan.ts';
import { fsReason } from '../fs-errors.ts';

export interface ImportOptions {
  groupsCsv?: string;
  groupColumn?: string;
  limits?: DecodeLimits;
  signal?: AbortSignal;
  onProgress?: (p: ImportProgress) => void;
  /** Files validated in parallel and committed together. */
  chunkSize?: number;
  /** Multi-page TIFF and multi-frame DICOM: the first page only (default), or each page as an image. */
  frames?: 'first' | 'each';
  /** The decode processes to use; by default the import starts its own and stops them at the end. */
  decodePool?: DecodePool;
  /** The job's row, created by the caller; without one the import records its own. */
  jobId?: string;
}

type Checked =
  | {
      file: ScannedFile;
      kind: 'new';
      sha256: string;
      bytes: Buffer;
      info: ImageInfo;
      dicomGroup: string | null;
      pages?: PageImage[];
      dim16: boolean;
    }
  | { file: ScannedFile; kind: 'known'; sha256: string; sameFile: boolean }
  | { file: ScannedFile; kind: 'rejected'; code: RejectCode; message: string };

async function check(
  project: Project,
  rootId: number,
  file: ScannedFile,
  limits: DecodeLimits,
  pool: DecodePool,
  frames: 'first' | 'each',
): Promise<Checked> {
  if (file.unlisted) return { file, kind: 'rejected', code: 'UNREADABLE', message: file.unlisted };
  let bytes: Buffer;
  try {
    const st = await fs.promises.stat(file.abs);
    if (!st.isFile()) return { file, kind: 'rejected', code: 'UNREADABLE', message: 'Not a regular file.' };
    if (st.size > limits.maxBytes)
      return {
        file,
        kind: 'rejected',
        code: 'IMAGE_TOO_LARGE',
        message: `The file is ${st.size} bytes; the limit is ${limits.maxBytes}.`,
      };
    bytes = await fs.promises.readFile(file.abs);
  } catch (e) {
    const why = fsReason(e, 'the file disappeared during the import');
    return { file, kind: 'rejected', code: 'UNREADABLE', message: `Cannot read the file (${why}).` };
  }
  const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
  const known = project.images.findBySha(sha256);
  // The same file again: under its own path, or (once split into pages) as its first page.
  const sameFile =
    known !== null &&
    known.rootId === rootId &&
    (known.relPath === file.rel || known.relPath === `${file.rel}#page=1`);
  // A multi-page file imported earlier as its first page only is read again when every page is asked for.
  const splitAgain =
    sameFile && frames === 'each' && known.relPath === file.rel && /^(tiff|dicom)$/.test(known.format);
  if (known && !splitAgain) return { file, kind: 'known', sha256, sameFile };
  const r = await pool.validate(bytes, limits, frames);
  if (!r.ok) return { file, kind: 'rejected', code: r.code, message: r.message };
  return {
    file,
    kind: 'new',
    sha256,
    bytes,
    info: r.info,
    dicomGroup: r.dicomGroup,
    dim16: r.dim16 === true,
    ...(r.pages ? { pages: r.pages } : {}),
  };
}

export async function importFolder(
  project: Project,
  folder: string,
  options: ImportOptions = {},
): Promise<ImportSummary> {
  const root = path.resolve(folder);
  let st: fs.Stats;
  try {
    st = fs.statSync(root);
  } catch {
    throw new FewShotError('NOT_FOUND', `No folder at ${root}.`);
  }
  if (!st.isDirectory()) throw new FewShotError('INVALID_INPUT', `${root} is not a folder.`);
  const groups = options.groupsCsv
    ? readGroupsCsv(options.groupsCsv, options.groupColumn)
    : new Map<string, string>();
  const limits = options.limits ?? DEFAULT_LIMITS;
  const chunkSize = options.chunkSize ?? 32;
  const pool = options.decodePool ?? new DecodePool();
  const rootId = project.images.ensureRoot(root);
  const jobId =
    options.jobId ??
    project.jobs.create('import', {
      root: path.basename(root),
      groups: options.groupsCsv ? path.basename(options.groupsCsv) : null,
    });

  const summary: ImportSummary = {
    root: path.basename(root),
    filesSeen: 0,
    added: 0,
    alreadyPresent: 0,
    duplicates: 0,
    rejected: [],
    perClass: {},
    groupsAssigned: 0,
    groupsUnmatched: 0,
    multiPage: 0,
    dim16Bit: 0,
  };
  const matchedGroups = new Set<string>();
  let lastProgress = 0;
  const progress = (force = false): void => {
    const now = performance.now();
    if (!force && now - lastProgress < 100) return; // ~10 Hz
    lastProgress = now;
    const p: ImportProgress = {
      phase: 'importing',
      filesSeen: summary.filesSeen,
      processed: summary.added + summary.alreadyPresent + summary.duplicates + summary.rejected.length,
      added: summary.added,
      rejected: summary.rejected.length,
    };
    options.onProgress?.(p);
    project.jobs.progress(jobId, p);
  };

  const addedOne = (className: string | null, groupKey: string | null): void => {
    summary.added++;
    if (groupKey !== null) summary.groupsAssigned++;
    const key = className ?? '(unlabelled)';
    summary.perClass[key] = (summary.perClass[key] ?? 0) + 1;
  };

  const commit = (results: Checked[]): void => {
    project.db.transaction(() => {
      for (const r of results) {
        if (r.kind === 'rejected') {
          const rej: RejectedFile = { path: r.file.rel, code: r.code, message: r.message };
          summary.rejected.push(rej);
          project.images.addRejection(jobId, rootId, r.file.rel, r.code, r.message);
          continue;
        }
        const group = groups.get(r.file.rel) ?? null;
        if (group !== null) matchedGroups.add(r.file.rel);
        if (r.kind === 'known') {
          if (r.sameFile) {
            summary.alreadyPresent++;
            if (group !== null && project.images.setGroup(rootId, r.file.rel, group))
              summary.groupsAssigned++;
          } else summary.duplicates++;
          continue;
        }
        if (hasSeparablePages(r.info)) summary.multiPage++;
        if (r.dim16) summary.dim16Bit++;
        const classId = r.file.className === null ? null : project.images.ensureClass(r.file.className);
        if (r.pages) {
          // Each page is an image; the pages of one file stay together in every split.
          const groupKey = group ?? r.dicomGroup ?? `file-${r.sha256.slice(0, 16)}`;
          const whole = project.images.findBySha(r.sha256);
          r.pages.forEach((page, k) => {
            const relPath = `${r.file.rel}#page=${k + 1}`;
            if (k === 0 && whole) {
              project.images.becomeFirstPage(whole.id, relPath, groupKey);
              summary.alreadyPresent++;
              return;
            }
            const sha = crypto.createHash('sha256').update(page.bytes).digest('hex');
            const known = project.images.findBySha(sha);
            if (known) {
              if (known.rootId === rootId && known.relPath === relPath) summary.alreadyPresent++;
              else summary.duplicates++;
              return;
            }
            const bytes = Buffer.from(page.bytes.buffer, page.bytes.byteOffset, page.bytes.byteLength);
            project.images.add({
              sha256: sha,
              rootId,
              relPath,
              fileSize: bytes.length,
              width: page.width,
              height: page.height,
              format: 'png',
              classId,
              groupKey,
              bytes,
            });
            addedOne(r.file.className, groupKey);
          });
          continue;
        }
        // Two identical files within one chunk: the second is a duplicate of the first.
        const seen = project.images.findBySha(r.sha256);
        if (seen) {
          if (seen.rootId === rootId && seen.relPath === r.file.rel) summary.alreadyPresent++;
          else summary.duplicates++;
          continue;
        }
        const groupKey = group ?? r.dicomGroup;
        project.images.add({
          sha256: r.sha256,
          rootId,
          relPath: r.file.rel,
          fileSize: r.bytes.length,
          width: r.info.width,
          height: r.info.height,
          format: r.info.format,
          classId,
          groupKey,
          bytes: r.bytes,
        });
        addedOne(r.file.className, groupKey);
      }
    })();
  };

  try {
    let chunk: ScannedFile[] = [];
    const flush = async (): Promise<void> => {
      if (!chunk.length) return;
      const results = await Promise.all(
        chunk.map((f) => check(project, rootId, f, limits, pool, options.frames ?? 'first')),
      );
      commit(results);
      chunk = [];
      progress();
    };
    for await (const file of scanFolder(root)) {
      if (options.signal?.aborted)
        throw new FewShotError('CANCELLED', 'Import cancelled; images committed so far are kept.');
      summary.filesSeen++;
      chunk.push(file);
      if (chunk.length >= chunkSize) await flush();
    }
    await flush();
    summary.groupsUnmatched = [...groups.keys()].filter((k) => !matchedGroups.has(k)).length;
    progress(true);
    project.db.transaction(() => {
      project.audit.append('import', {
        root: summary.root,
        added: summary.added,
        alreadyPresent: summary.alreadyPresent,
        duplicates: summary.duplicates,
        rejected: summary.rejected.length,
        groupsAssigned: summary.groupsAssigned,
      });
      project.jobs.finish(jobId, 'done', { ...summary, rejected: summary.rejected.length });
    })();
    options.onProgress?.({ phase: 'done', summary });
    return summary;
  } catch (e) {
    project.jobs.fail(jobId, e, { ...summary, rejected: summary.rejected.length });
    throw e;
  } finally {
    if (!options.decodePool) pool.close();
  }
}
