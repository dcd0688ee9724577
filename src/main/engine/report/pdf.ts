// PDF building blocks on pdfkit: embedded DejaVu fonts (works offline, any Unicode class name), the
// "research use only" line and "Page k of n" on every page, tables, and simple vector figures.

import { createRequire } from 'node:module';
import PDFDocument from 'pdfkit';

const require = createRequire(import.meta.url);
const FONT = require.resolve('dejavu-fonts-ttf/ttf/DejaVuSans.ttf');
const FONT_BOLD = require.resolve('dejavu-fonts-ttf/ttf/DejaVuSans-Bold.ttf');

export const RUO = 'Research use only — not for diagnosis.';
export const MARGIN = 50;

export type Doc = InstanceType<typeof PDFDocument>;

export function newDocument(
  title: string,
  options: { compress?: boolean } = {},
): { doc: Doc; done: Promise<Buffer> } {
  const doc = new PDFDocument({
    size: 'A4',
    margins: { top: MARGIN + 14, bottom: MARGIN, left: MARGIN, right: MARGIN },
    compress: options.compress ?? true,
    // Only the product's name: never a user or machine name.
    info: {
      Title: title,
      Author: 'FewShot Lab',
      Creator: 'FewShot Lab',
      Producer: 'FewShot Lab',
      Subject: RUO,
    },
    autoFirstPage: false,
    // Pages stay in memory until finish(), which numbers them once the total is known.
    bufferPages: true,
  });
  doc.registerFont('body', FONT);
  doc.registerFont('bold', FONT_BOLD);
  doc.on('pageAdded', () => {
    const { x, y } = { x: doc.x, y: doc.y };
    doc.font('bold').fontSize(8).fillColor('#a15c00').text(RUO, MARGIN, 28, { lineBreak: false });
    doc.font('body').fontSize(10).fillColor('#000');
    doc.x = x;
    doc.y = y;
  });
  const chunks: Buffer[] = [];
  doc.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<Buffer>((resolve) => doc.on('end', () => resolve(Buffer.concat(chunks))));
  doc.addPage();
  return { doc, done };
}

/** Numbers every page ("Page k of n") in the footer and ends the document. */
export function finish(doc: Doc): void {
  const range = doc.bufferedPageRange();
  for (let i = range.start; i < range.start + range.count; i++) {
    doc.switchToPage(i);
    // The footer sits in the bottom margin; without lifting the margin pdfkit would start a new page.
    const bottom = doc.page.margins.bottom;
    doc.page.margins.bottom = 0;
    doc
      .font('body')
      .fontSize(8)
      .fillColor('#555')
      .text(`Page ${i + 1} of ${range.count}`, MARGIN, doc.page.height - MARGIN + 18, {
        width: doc.page.width - 2 * MARGIN,
        align: 'center',
        lineBreak: false,
      });
    doc.page.margins.bottom = bottom;
  }
  doc.end();
}

/** The space left on the current page above the bottom margin. */
export function spaceLeft(doc: Doc): number {
  return doc.page.height - MARGIN - doc.y;
}

/** Starts a new page unless `height` points still fit on this one (keeps a block together). */
export function ensureSpace(doc: Doc, height: number): void {
  if (height > spaceLeft(doc)) doc.addPage();
}

/** A heading, moved to the next page when `keepWith` points of what follows would not fit under it. */
export function heading(doc: Doc, text: string, size = 14, keepWith = 60): void {
  ensureSpace(doc, size * 2.2 + keepWith);
  doc
    .moveDown(0.6)
    .font('bold')
    .fontSize(size)
    .fillColor('#000')
    .text(text)
    .font('body')
    .fontSize(10)
    .moveDown(0.3);
}

export function para(doc: Doc, text: string): void {
  doc
    .font('body')
    .fontSize(10)
    .fillColor('#000')
    .text(text, { width: doc.page.width - 2 * MARGIN })
    .moveDown(0.3);
}

/**
 * A plain table whose cells wrap (nothing is cut off); a row that would not fit on the page starts a
 * new one, and the header is repeated there.
 */
export function table(doc: Doc, header: string[], rows: string[][], widths: number[]): void {
  const pad = 3;
  const x0 = MARGIN;
  const heightOf = (cells: string[], bold: boolean): number => {
    doc.font(bold ? 'bold' : 'body').fontSize(9);
    const h = Math.max(
      ...cells.map((c, i) => doc.heightOfString(c || ' ', { width: (widths[i] as number) - 4 })),
    );
    // A cell taller than a page would never fit: it is clipped to one page rather than looping.
    return Math.min(h + 2 * pad, doc.page.height - 2 * MARGIN - 40);
  };
  const draw = (cells: string[], bold: boolean): void => {
    const y = doc.y;
    const h = heightOf(cells, bold);
    let x = x0;
    doc
      .font(bold ? 'bold' : 'body')
      .fontSize(9)
      .fillColor('#000');
    cells.forEach((c, i) => {
      doc.text(c, x + 2, y + pad, { width: (widths[i] as number) - 4, height: h - pad });
      x += widths[i] as number;
    });
    doc
      .moveTo(x0, y + h)
      .lineTo(x, y + h)
      .strokeColor('#cccccc')
      .lineWidth(0.5)
      .stroke();
    doc.x = x0;
    doc.y = y + h;
  };
  const headerHeight = heightOf(header, true);
  // The header never stands alone at the foot of a page.
  ensureSpace(doc, headerHeight + (rows[0] ? heightOf(rows[0], false) : 0));
  draw(header, true);
  for (const r of rows) {
    if (heightOf(r, false) > spaceLeft(doc)) {
      doc.addPage();
      draw(header, true);
    }
    draw(r, false);
  }
  doc.font('body').fontSize(10).moveDown(0.5);
}

/** A line chart with an optional band, axes from 0 to 1 on y. */
export function lineChart(
  doc: Doc,
  points: { x: number; y: number; lo?: number; hi?: number }[],
  opts: { width: number; height: number; xLabel: string; logX?: boolean; diagonal?: boolean },
): void {
  if (doc.y + opts.height + 40 > doc.page.height - MARGIN) doc.addPage();
  const left = MARGIN + 36;
  // Room above for the top tick's label, so it never touches the text before the chart.
  const top = doc.y + 10;
  const w = opts.width;
  const h = opts.height;
  const fx = (v: number): number => (opts.logX ? Math.log(v) : v);
  const xs = points.map((p) => fx(p.x));
  const x0 = opts.logX ? Math.min(...xs) : 0;
  const x1 = opts.logX ? Math.max(...xs, x0 + 1e-9) : 1;
  const sx = (v: number): number => left + ((fx(v) - x0) / (x1 - x0 || 1)) * w;
  const sy = (v: number): number => top + h - v * h;
  doc
    .lineWidth(0.7)
    .strokeColor('#888')
    .moveTo(left, top)
    .lineTo(left, top + h)
    .lineTo(left + w, top + h)
    .stroke();
  doc.font('body').fontSize(8).fillColor('#000');
  for (const t of [0, 0.5, 1])
    doc.text(`${t * 100}%`, MARGIN, sy(t) - 4, { width: 32, align: 'right', lineBreak: false });
  if (points.every((p) => p.lo !== undefined && p.hi !== undefined) && points.length > 1) {
    const first = points[0] as { x: number; hi?: number };
    doc.moveTo(sx(first.x), sy(first.hi as number));
    for (const p of points.slice(1)) doc.lineTo(sx(p.x), sy(p.hi as number));
    for (const p of [...points].reverse()) doc.lineTo(sx(p.x), sy(p.lo as number));
    doc.closePath().fillColor('#1f6feb').fillOpacity(0.15).fill().fillOpacity(1);
  }
  if (opts.diagonal)
    doc.strokeColor('#bbb').dash(3, { space: 3 }).moveTo(sx(0), sy(0)).lineTo(sx(1), sy(1)).stroke().undash();
  const [p0, ...rest] = points;
  if (p0) {
    doc.strokeColor('#1f6feb').lineWidth(1.5).moveTo(sx(p0.x), sy(p0.y));
    for (const p of rest) doc.lineTo(sx(p.x), sy(p.y));
    doc.stroke();
  }
  if (opts.logX)
    for (const p of points)
      doc
        .fillColor('#000')
        .text(String(p.x), sx(p.x) - 10, top + h + 3, { width: 20, align: 'center', lineBreak: false });
  doc.text(opts.xLabel, left, top + h + 14, { width: w, align: 'center', lineBreak: false });
  doc.x = MARGIN;
  doc.y = top + h + 30;
  doc.fillColor('#000');
}
