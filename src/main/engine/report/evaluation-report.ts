// The evaluation report: what was trained on what, how it was evaluated, the figures with their
// intervals, the confusion matrix, the learning curve, misclassified examples, and limitations written
// from the data. Absolute paths never appear in it (a misclassified image is named by its path under the
// import folder); thumbnails are re-encoded, so no image metadata is copied.

import { ttaLabel } from '../../../shared/tta.ts';
import { modelHighBitDepth, windowed } from '../image/windowing.ts';
import path from 'node:path';
import type { DatasetWarning } from '../../../shared/contract.ts';
import { curveOutlook } from '../../../shared/curve-outlook.ts';
import type { CurvePoint, Estimate, EvaluationResult, ModelRecord } from '../../../shared/results.ts';
import type { Project } from '../../store/project.ts';
import { datasetFingerprint } from '../data-fingerprint.ts';
import { calibrationLabel, estimateLabel, protocolLabel } from '../../../shared/estimate-labels.ts';
import { isFinetuned } from '../../../shared/strategies.ts';
import { decoder } from '../image/decode.ts';
import { softwareVersions } from '../versions.ts';
import {
  formatSetting,
  linesAtSlashes,
  pct,
  pctNumber,
  points,
  score,
  shortenMiddle,
  shortenPath,
} from './format.ts';
import {
  ensureSpace,
  finish,
  heading,
  lineChart,
  MARGIN,
  newDocument,
  para,
  table,
  type Doc,
} from './pdf.ts';

const GAP = 30;
/** Usable width between the side margins of an A4 page. */
const CONTENT_WIDTH = 595.28 - 2 * MARGIN;

export interface EvaluationReportInput {
  project: Project;
  model: ModelRecord;
  evaluation: EvaluationResult;
  /** The same evaluation with test-time augmentation, when it was asked for. */
  ttaEvaluation?: EvaluationResult;
  curve: CurvePoint[];
  roc: { fpr: number; tpr: number }[] | null;
  warnings: DatasetWarning[];
  compress?: boolean;
  now?: Date;
}

/**
 * "99.3 % [98.7, 99.9]": the format of the CLI's evaluate output, so figures can be compared; a figure
 * short of 100 % never reads as 100 % ("99.96 %").
 */
export function formatEstimate(e: Estimate): string {
  return `${pct(e.mean)} [${pctNumber(e.ci95[0])}, ${pctNumber(e.ci95[1])}]`;
}

/** A score between 0 and 1 with its interval, as a number: ROC AUC "0.994 [0.988, 0.998]". */
export function formatScore(e: Estimate): string {
  return `${score(e.mean)} [${score(e.ci95[0])}, ${score(e.ci95[1])}]`;
}

export function describeProtocol(e: EvaluationResult): string {
  const p = e.protocol;
  const groups = e.groupAware
    ? 'group-aware (a patient, slide or source image never on both sides)'
    : 'without groups';
  switch (p.kind) {
    case 'kfold':
      return `stratified ${p.folds}-fold cross-validation, ${groups}, seed ${e.seed}`;
    case 'loo':
      return `leave-one-${e.groupAware ? 'group' : 'image'}-out cross-validation, seed ${e.seed}`;
    case 'holdout':
      return e.source === 'model-validation'
        ? `the model's own validation split (${pct(p.testFraction, 0)} of the images, stratified), ${groups}, seed ${e.seed}`
        : `one stratified hold-out split (${pct(p.testFraction, 0)} test), ${groups}, seed ${e.seed}`;
    case 'episodes':
      return `${e.episodes} few-shot episodes, ${e.ways}-way ${p.shots}-shot, queries from other ${e.groupAware ? 'groups' : 'images'}, seed ${e.seed}`;
  }
}

function intervalNote(e: Estimate): string {
  const base =
    e.method === 't'
      ? "Student's t across splits"
      : e.method === 'wilson'
        ? 'Wilson score interval'
        : e.method === 'bootstrap'
          ? 'percentile bootstrap (1,000 resamples)'
          : 'none';
  return e.floored ? `${base}; ≥ pooled Wilson` : base;
}

export function limitations(
  ev: EvaluationResult,
  counts: Map<string, number>,
  warnings: DatasetWarning[],
): string[] {
  const out: string[] = [];
  const values = [...counts.values()];
  const min = Math.min(...values);
  const width = ev.accuracy.ci95[1] - ev.accuracy.ci95[0];
  if (min < 30) {
    // Said with the smallest class's own interval, so the warning carries its evidence.
    const smallest = [...counts.entries()].find(([, n]) => n === min)?.[0];
    const recall = ev.perClass.find((c) => c.class === smallest)?.recall;
    out.push(
      `n = ${min} images in the smallest class${smallest === undefined ? '' : ` (${smallest})`}${recall ? `: its recall interval spans ${points(recall.ci95[1] - recall.ci95[0])} points, and` : ' —'} one more or one fewer error moves the figures visibly.`,
    );
  }
  if (width > 0.1)
    out.push(
      `The 95 % interval for accuracy spans ${points(width)} points: the true accuracy could be anywhere in it.`,
    );
  if (values.length > 1 && Math.max(...values) > 2 * min)
    out.push(
      `Classes are imbalanced (${min} to ${Math.max(...values)} images): balanced accuracy is the fairer headline.`,
    );
  if (!ev.groupAware)
    out.push(
      'No group information was used: if several images come from one patient, slide or source image, these figures are optimistic.',
    );
  for (const w of warnings)
    if (w.kind === 'near-duplicate' || w.kind === 'label-conflict') out.push(w.message);
  out.push(
    'The backbone was pretrained on ImageNet photographs; performance on images from another scanner, stain or site may be lower than shown here.',
  );
  out.push(
    'These figures come from the images in this project only; they are not a validation of clinical performance.',
  );
  return out;
}

const LABEL_WIDTH = 104;
/** Room above a matrix: a title of up to two lines, then the column labels. */
const TITLE_HEIGHT = 34;

/** One matrix drawn at (left, top): column labels above, cells, optionally row labels at its left. */
function drawMatrix(
  doc: Doc,
  classes: string[],
  m: number[][],
  at: { left: number; top: number; cell: number; title: string; normalise: boolean; rowLabels: boolean },
): void {
  const { left, cell, normalise } = at;
  doc
    .font('bold')
    .fontSize(8)
    .fillColor('#000')
    .text(at.title, left, at.top, { width: classes.length * cell, height: TITLE_HEIGHT - 14 });
  const top = at.top + TITLE_HEIGHT;
  doc.font('body').fontSize(8);
  // A class name too wide for its column or the row labels loses its middle (PDFKit would wrap it at a
  // hyphen into the cells below); the per-class table above has every name whole.
  const fitted = (c: string, width: number): string =>
    shortenMiddle(c, (t) => doc.widthOfString(`${t}\n`) <= width);
  classes.forEach((c, j) =>
    doc.fillColor('#000').text(fitted(c, cell - 2), left + j * cell, top - 12, {
      width: cell,
      align: 'center',
      lineBreak: false,
    }),
  );
  m.forEach((row, i) => {
    const sum = row.reduce((a, b) => a + b, 0);
    if (at.rowLabels)
      doc
        .fillColor('#000')
        .text(fitted(classes[i] as string, LABEL_WIDTH), MARGIN, top + i * cell + cell / 2 - 4, {
          width: LABEL_WIDTH,
          align: 'right',
          lineBreak: false,
        });
    row.forEach((n, j) => {
      const share = sum ? n / sum : 0;
      const colour = i === j ? [27, 127, 59] : [198, 40, 40];
      const a = n ? 0.12 + 0.8 * share : 0;
      const mix = colour.map((v) => Math.round(255 - (255 - v) * a)) as [number, number, number];
      doc
        .rect(left + j * cell, top + i * cell, cell - 2, cell - 2)
        .fillColor(mix)
        .fill();
      doc
        .fillColor(share > 0.55 ? '#fff' : '#000')
        .text(normalise ? pct(share, 0) : String(n), left + j * cell, top + i * cell + cell / 2 - 5, {
          width: cell - 2,
          align: 'center',
          lineBreak: false,
        });
    });
  });
  doc.fillColor('#000');
}

/**
 * Counts and row-normalised shares side by side, sharing the row labels, when both fit across the
 * page at a readable size; otherwise one under the other. Each block starts a new page only when it
 * would not fit on this one.
 */
function confusionFigures(doc: Doc, classes: string[], m: number[][]): void {
  const C = Math.max(1, classes.length);
  const gap = 24;
  const titles = ['Counts', 'Row-normalised (share of each true class)'];
  const sideCell = Math.min(48, Math.floor((CONTENT_WIDTH - LABEL_WIDTH - 6 - gap) / (2 * C)));
  if (sideCell >= 34) {
    ensureSpace(doc, TITLE_HEIGHT + C * sideCell + 10);
    const top = doc.y;
    const left = MARGIN + LABEL_WIDTH + 6;
    drawMatrix(doc, classes, m, {
      left,
      top,
      cell: sideCell,
      title: titles[0] as string,
      normalise: false,
      rowLabels: true,
    });
    drawMatrix(doc, classes, m, {
      left: left + C * sideCell + gap,
      top,
      cell: sideCell,
      title: titles[1] as string,
      normalise: true,
      rowLabels: false,
    });
    doc.x = MARGIN;
    doc.y = top + TITLE_HEIGHT + C * sideCell + 10;
    return;
  }
  const cell = Math.min(48, Math.floor(360 / C));
  for (const [k, title] of titles.entries()) {
    ensureSpace(doc, TITLE_HEIGHT + C * cell + 10);
    const top = doc.y;
    drawMatrix(doc, classes, m, {
      left: MARGIN + LABEL_WIDTH + 6,
      top,
      cell,
      title,
      normalise: k === 1,
      rowLabels: true,
    });
    doc.x = MARGIN;
    doc.y = top + TITLE_HEIGHT + C * cell + 10;
  }
}

const THUMB = 96;
const THUMB_COLS = 4;
const CAPTION_WIDTH = THUMB + GAP - 6;

/** The caption under a misclassified thumbnail: where the file is, its true and predicted class. */
function thumbCaption(doc: Doc, relPath: string | null, truth: string, predicted: string, p: number): string {
  doc.font('body').fontSize(7);
  // Every line is laid out here so that none needs wrapping (which would split a word): the path in up to
  // two lines broken after a "/", losing folders from its middle (then its file name's middle) when
  // longer; a class name too long for its line loses its middle.
  // (PDFKit's wrapping counts the line's newline as a glyph, so it is measured with it.)
  const fits = (line: string): boolean => doc.widthOfString(`${line}\n`) <= CAPTION_WIDTH;
  const where =
    relPath === null
      ? ['(image no longer in the project)']
      : (linesAtSlashes(
          shortenPath(relPath, (t) => linesAtSlashes(t, fits, 2) !== null),
          fits,
          2,
        ) ?? ['…']);
  const chance = ` (${pct(p)})`;
  const t = shortenMiddle(truth, (c) => fits(`true: ${c}`));
  const q = shortenMiddle(predicted, (c) => fits(`predicted: ${c}${chance}`));
  return [...where, `true: ${t}`, `predicted: ${q}${chance}`].join('\n');
}

/** Thumbnails of misclassified test images in rows of four, a row moving to the next page whole. */
async function misclassified(
  doc: Doc,
  project: Project,
  model: ModelRecord,
  ev: EvaluationResult,
): Promise<void> {
  const all = ev.predictions.filter((p) => p.truth !== p.predicted);
  const wrong = all.slice(0, 24);
  heading(doc, 'Misclassified examples', 12, THUMB + 40);
  if (!wrong.length) {
    para(doc, 'No test image was misclassified.');
    return;
  }
  para(
    doc,
    `${all.length} test ${all.length === 1 ? 'image was' : 'images were'} misclassified${all.length > wrong.length ? `; the first ${wrong.length} are shown` : ''}, each with its path under the imported folder, its true class and the predicted class with its probability.`,
  );
  for (let r = 0; r < wrong.length; r += THUMB_COLS) {
    const row = wrong.slice(r, r + THUMB_COLS).map((p) => {
      const img = p.id === undefined ? null : project.images.get(p.id);
      const caption = thumbCaption(
        doc,
        img?.relPath ?? null,
        ev.classes[p.truth] as string,
        ev.classes[p.predicted] as string,
        p.probabilities[p.predicted] ?? 0,
      );
      return { img, caption, height: doc.heightOfString(caption, { width: CAPTION_WIDTH }) };
    });
    const rowHeight = THUMB + 4 + Math.max(...row.map((c) => c.height)) + 12;
    ensureSpace(doc, rowHeight);
    const y = doc.y;
    for (const [k, c] of row.entries()) {
      const x = MARGIN + k * (THUMB + GAP);
      const bytes = c.img ? project.images.bytes(c.img.sha256) : null;
      if (bytes) {
        // Re-encoded pixels only: EXIF and ICC data do not travel into the report.
        const thumb = await decoder(await windowed(bytes, modelHighBitDepth(model)))
          .resize(THUMB, THUMB, { fit: 'contain', background: '#ffffff' })
          .jpeg({ quality: 80 })
          .toBuffer();
        doc.image(thumb, x, y, { width: THUMB, height: THUMB });
      }
      doc
        .font('body')
        .fontSize(7)
        .fillColor('#000')
        .text(c.caption, x, y + THUMB + 3, { width: CAPTION_WIDTH });
    }
    doc.x = MARGIN;
    doc.y = y + rowHeight;
  }
  doc.font('body').fontSize(10);
}

export async function renderEvaluationReport(input: EvaluationReportInput): Promise<Buffer> {
  const { project, model, evaluation: ev } = input;
  const { doc, done } = newDocument(
    `FewShot Lab evaluation report — ${model.name}`,
    input.compress === undefined ? {} : { compress: input.compress },
  );
  const sw = softwareVersions();
  const counts = new Map<string, number>();
  for (const t of model.trainingSet) counts.set(t.class, (counts.get(t.class) ?? 0) + 1);
  const projectName = project.meta('name') ?? path.basename(project.file, path.extname(project.file));

  doc.font('bold').fontSize(20).text('Evaluation report');
  para(doc, `Project: ${projectName}`);
  para(doc, `Model: ${model.name} (${model.id})`);
  para(doc, `Date: ${(input.now ?? new Date()).toISOString().slice(0, 10)}`);
  para(
    doc,
    `Software: FewShot Lab ${sw.app}; Node.js ${sw.node}; onnxruntime-node ${sw['onnxruntime-node']}; sharp ${sw.sharp} (libvips ${sw.libvips}); better-sqlite3 ${sw['better-sqlite3']}; ${sw.platform}`,
  );

  heading(doc, '1. Data');
  const testSupport = new Map(ev.perClass.map((c) => [c.class, c.support]));
  table(
    doc,
    ['Class', 'Training images (model)', 'Test predictions (evaluation)'],
    [...counts.entries()].map(([c, n]) => [c, String(n), String(testSupport.get(c) ?? 0)]),
    [180, 150, 165],
  );
  para(
    doc,
    `Evaluation: ${describeProtocol(ev)} (${protocolLabel(ev.protocol, ev.testPredictions)}). ${
      ev.source === 'model-validation'
        ? 'These images were held out of its training; they also chose its epoch by early stopping (so accuracy may read slightly high) and fitted its temperature (so the calibration error is cross-fitted: each half rescaled by a temperature fitted on the other).'
        : `Each image is tested by a model fitted without it${ev.protocol.kind === 'episodes' ? ' (episodes re-use images across episodes)' : ''}.`
    }`,
  );
  if (model.metrics)
    para(
      doc,
      `Estimate stored with the model at training: accuracy ${formatEstimate(model.metrics.accuracy)} (${estimateLabel(model.metrics)})${model.metrics.calibration ? `; ${calibrationLabel(model.metrics.calibration)}` : ''}.`,
    );
  para(
    doc,
    `Dataset fingerprint (sha256 over the sorted image hashes and labels): ${datasetFingerprint(model.trainingSet)}`,
  );
  para(
    doc,
    `Images excluded from the project's data set: ${project.images.page({ excluded: true }, 0, 1).total}.`,
  );
  const dup = input.warnings.filter((w) => w.kind !== 'small-class' && w.kind !== 'imbalance');
  para(
    doc,
    dup.length
      ? `Duplicate and leakage checks: ${dup.map((w) => w.message).join(' ')}`
      : 'Duplicate and leakage checks: no near-duplicate images across groups or labels were found.',
  );

  heading(doc, '2. Model');
  table(
    doc,
    ['Setting', 'Value'],
    [
      ['Backbone', model.backboneId],
      ['Backbone sha256', model.backboneSha256],
      ['Strategy', model.strategy],
      // The strategy and seed have their rows; the rest as the model recorded them.
      ...Object.entries(model.params)
        .filter(([k]) => k !== 'strategy' && k !== 'seed')
        .map(([k, v]) => [k, formatSetting(k, v)]),
      ['Seed', String(model.seed)],
    ],
    [140, 355],
  );

  heading(doc, '3. Results');
  table(
    doc,
    ['Figure', 'Value [95 % interval]', 'Interval'],
    [
      ['Accuracy', formatEstimate(ev.accuracy), intervalNote(ev.accuracy)],
      ['Balanced accuracy', formatEstimate(ev.balancedAccuracy), intervalNote(ev.balancedAccuracy)],
      ['Macro-F1', formatEstimate(ev.macroF1), intervalNote(ev.macroF1)],
      ...(ev.rocAucOvr
        ? [['ROC AUC (one-vs-rest)', formatScore(ev.rocAucOvr), intervalNote(ev.rocAucOvr)]]
        : []),
      ...(ev.calibration
        ? [
            [
              'Calibration error (ECE)',
              pct(ev.calibration.ece),
              `${ev.calibration.bins} bins, n = ${ev.calibration.n}, mean confidence ${pct(ev.calibration.meanConfidence)}`,
            ],
          ]
        : []),
    ],
    [120, 150, 225],
  );
  const tv = input.ttaEvaluation;
  if (tv?.tta) {
    para(
      doc,
      `With ${ttaLabel(tv.tta.kind)} — the same splits and heads, each test image scored over its views, the temperature (T = ${tv.tta.temperature.toFixed(3)} over all splits) fitted on held-out views of other splits:`,
    );
    const ece = (e: EvaluationResult) => (e.calibration ? pct(e.calibration.ece) : '—');
    table(
      doc,
      ['Figure', 'Single view', `${tv.tta.views} views`],
      [
        ['Accuracy', formatEstimate(ev.accuracy), formatEstimate(tv.accuracy)],
        ['Balanced accuracy', formatEstimate(ev.balancedAccuracy), formatEstimate(tv.balancedAccuracy)],
        ['Macro-F1', formatEstimate(ev.macroF1), formatEstimate(tv.macroF1)],
        ['Calibration error (ECE)', ece(ev), ece(tv)],
      ],
      [120, 187, 188],
    );
  }
  table(
    doc,
    ['Class', 'Precision', 'Recall', 'F1', 'Support'],
    ev.perClass.map((c) => [
      c.class,
      formatEstimate(c.precision),
      formatEstimate(c.recall),
      formatEstimate(c.f1),
      String(c.support),
    ]),
    [90, 120, 120, 115, 50],
  );

  const C = Math.max(1, ev.classes.length);
  heading(doc, 'Confusion matrix', 12, 40 + TITLE_HEIGHT + C * Math.min(48, Math.floor(360 / C)));
  para(doc, `Rows: true class; columns: predicted class; ${ev.testPredictions} test predictions.`);
  confusionFigures(doc, ev.classes, ev.confusion);
  await misclassified(doc, project, model, ev);

  // The chart, its two lines of text and the table stay on one page.
  heading(doc, 'Learning curve', 12, input.curve.length ? 300 + 18 * input.curve.length : 30);
  if (input.curve.length) {
    const shots = [...input.curve].map((p) => p.shots).sort((a, b) => a - b);
    const listed =
      shots.length > 1 ? `${shots.slice(0, -1).join(', ')} and ${shots.at(-1)}` : String(shots[0]);
    para(
      doc,
      `Accuracy at ${listed} labelled images per class (few-shot episodes; the band is the 95 % interval). A curve still rising at the right means more labelled images would help.`,
    );
    const outlook = curveOutlook(input.curve);
    if (outlook) para(doc, outlook.sentence);
    lineChart(
      doc,
      input.curve.map((p) => ({
        x: p.shots,
        y: p.accuracy.mean,
        lo: p.accuracy.ci95[0],
        hi: p.accuracy.ci95[1],
      })),
      { width: 380, height: 180, xLabel: 'labelled images per class', logX: true },
    );
    table(
      doc,
      ['Images per class', 'Accuracy [95 % interval]', 'Episodes'],
      input.curve.map((p) => [String(p.shots), formatEstimate(p.accuracy), String(p.episodes)]),
      [120, 200, 100],
    );
  } else
    para(
      doc,
      isFinetuned(model)
        ? 'No learning curve for a fine-tuned model: it would take one fine-tuning per point and episode.'
        : 'Too few images per class for a learning curve.',
    );
  if (input.roc) {
    heading(doc, `ROC curve (${ev.classes[1]} against ${ev.classes[0]})`, 12, 220);
    lineChart(
      doc,
      input.roc.map((p) => ({ x: p.fpr, y: p.tpr })),
      { width: 220, height: 180, xLabel: 'false-positive rate', diagonal: true },
    );
  }

  heading(doc, '4. Limitations');
  for (const l of limitations(ev, counts, input.warnings)) para(doc, `• ${l}`);
  finish(doc);
  return done;
}
