// Group files: which patient, slide or source image each file came from, so splits can keep a group on
// one side. Accepts `file,group` and the common column names labs use (source_image, patient, slide).

import fs from 'node:fs';
import { FewShotError } from '../../../shared/errors.ts';
import { parseCsv } from './csv.ts';

const FILE_COLUMNS = ['file', 'path', 'filename', 'image'];
const GROUP_COLUMNS = ['group', 'source_image', 'patient', 'patient_id', 'slide', 'subject', 'case'];

export function normalizeRelPath(p: string): string {
  return p.trim().replace(/\\/g, '/').replace(/^\.\//, '').replace(/^\/+/, '');
}

export function readGroupsCsv(file: string, groupColumn?: string): Map<string, string> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new FewShotError('NOT_FOUND', `Cannot read the groups file: ${(e as Error).message}`);
  }
  const rows = parseCsv(text);
  const header = rows.shift()?.map((h) => h.trim().toLowerCase());
  if (!header) throw new FewShotError('INVALID_INPUT', 'The groups file is empty.');
  const fileIdx = header.findIndex((h) => FILE_COLUMNS.includes(h));
  const wanted = groupColumn ? [groupColumn.toLowerCase()] : GROUP_COLUMNS;
  const groupIdx = header.findIndex((h) => wanted.includes(h));
  if (fileIdx < 0 || groupIdx < 0) {
    throw new FewShotError(
      'INVALID_INPUT',
      `The groups file needs a header with a file column (${FILE_COLUMNS.join('/')}) and a group column (${wanted.join('/')}); found: ${header.join(', ')}.`,
    );
  }
  const map = new Map<string, string>();
  for (const r of rows) {
    const f = r[fileIdx];
    const g = r[groupIdx];
    if (f === undefined || g === undefined || f.trim() === '' || g.trim() === '') continue;
    map.set(normalizeRelPath(f), g.trim());
  }
  return map;
}
