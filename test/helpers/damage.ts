// Damaging a project file the way a failing disk or an interrupted copy does.

import fs from 'node:fs';
import Database from 'better-sqlite3';

/** Fills `pages` pages from `fromFraction` of the file with 0xFF: invalid page types and pointers. */
export function damagePages(file: string, fromFraction: number, pages: number, pageSize = 4096): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const first = Math.floor((fs.fstatSync(fd).size / pageSize) * fromFraction);
    fs.writeSync(fd, Buffer.alloc(pageSize * pages, 0xff), 0, pageSize * pages, first * pageSize);
  } finally {
    fs.closeSync(fd);
  }
}

/** The page numbers (1-based) of a table's overflow pages: where large values such as image bytes live. */
export function overflowPages(file: string, table: string): number[] {
  const db = new Database(file, { readonly: true });
  try {
    return db
      .prepare("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'overflow' ORDER BY pageno")
      .pluck()
      .all(table) as number[];
  } finally {
    db.close();
  }
}

/** Overwrites one page (1-based, as SQLite numbers them) with 0xFF. */
export function damagePage(file: string, pageNo: number, pageSize = 4096): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, Buffer.alloc(pageSize, 0xff), 0, pageSize, (pageNo - 1) * pageSize);
  } finally {
    fs.closeSync(fd);
  }
}
