// Damaging a project file the way a failing disk or an interrupted copy does.

import fs from 'node:fs';

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
