// The evaluation report: what was trained on what, how it was evaluated, the figures with their
// intervals, the confusion matrix, the learning curve, misclassified examples, and limitations written
// from the data. Paths never appear in it; thumbnails are re-encoded, so no image metadata is copied.

import { ttaLabel } from '../../../shared/tta.ts';
import { modelHighBitDepth, windowed } from '../image/windowing.ts';
import path from 'node:path';
import type { DatasetWarning } from '../../../shared/contract.ts';
import type { CurvePoint, Estimate, EvaluationResult, ModelRecord } from '../../../shared/results.ts';
import type { Project } from '../../store/project.ts';
import { datasetFingerprint } from '../data-fingerprint.ts';
import { calibrationLabel, estimateLabel, protocolLabel } from '../../../shared/estimate-labels.ts';
import { isFinetuned } from '../../../shared/strategies.ts';
import { decoder } from '../image/decode.ts';
import { softwareVersions } from '../versions.ts';
import { heading, lineChart, MARGIN, newDocument, para, table, type Doc } from './pdf.ts';

const GAP = 30;

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

/** "99.3 % [98.7, 99.9]": the format of the CLI's evaluate output, so figures can be compared. */
export function formatEstimate(e: Estimate): string {
  return `${(e.mean * 100).toFixed(1)} % [${(e.ci95[0] * 100).toFixed(1)}, ${(e.ci95[1] * 100).toFixed(1)}]`;
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
      return `one stratified hold-out split (${Math.round(p.testFraction * 100)} % test), ${groups}, seed ${e.seed}`;
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
  if (min < 30)
    out.push(
      `n = ${min} images in the smallest class — intervals are wide, and one more or one fewer error moves the figures visibly.`,
    );
  if (width > 0.1)
    out.push(
      `The 95 % interval for accuracy spans ${(width * 100).toFixed(0)} points: the true accuracy could be anywhere in it.`,
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

function confusionFigure(doc: Doc, classes: string[], m: number[][], normalise: boolean): void {
  const C = classes.length;
  const cell = Math.min(48, Math.floor(360 / Math.max(1, C)));
  const left = MARGIN + 110;
  if (doc.y + cell * C + 40 > doc.page.height - MARGIN) doc.addPage();
  const top = doc.y + 14;
  doc.font('body').fontSize(8);
  classes.forEach((c, j) =>
    doc
      .fillColor('#000')
      .text(c, left + j * cell, top - 12, { width: cell, align: 'center', lineBreak: false, ellipsis: true }),
  );
  m.forEach((row, i) => {
    const sum = row.reduce((a, b) => a + b, 0);
    doc.fillColor('#000').text(classes[i] as string, MARGIN, top + i * cell + cell / 2 - 4, {
      width: 104,
      align: 'right',
      lineBreak: false,
      ellipsis: true,
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
        .text(
          normalise ? `${(share * 100).toFixed(0)}%` : String(n),
          left + j * cell,
          top + i * cell + cell / 2 - 5,
          { width: cell - 2, align: 'center', lineBreak: false },
        );
    });
  });
  doc.fillColor('#000');
  doc.x = MARGIN;
  doc.y = top + C * cell + 10;
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
    `Evaluation: ${describeProtocol(ev)} (${protocolLabel(ev.protocol, ev.testPredictions)}). Each image is tested by a model fitted without it${ev.protocol.kind === 'episodes' ? ' (episodes re-use images across episodes)' : ''}.`,
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
      ...Object.entries(model.params).map(([k, v]) => [
        k,
        typeof v === 'number' ? String(Number(v.toPrecision(4))) : String(v),
      ]),
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
        ? [['ROC AUC (one-vs-rest)', formatEstimate(ev.rocAucOvr), intervalNote(ev.rocAucOvr)]]
        : []),
      ...(ev.calibration
        ? [
            [
              'Calibration error (ECE)',
              `${(ev.calibration.ece * 100).toFixed(1)} %`,
              `${ev.calibration.bins} bins, n = ${ev.calibration.n}, mean confidence ${(ev.calibration.meanConfidence * 100).toFixed(1)} %`,
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
    const ece = (e: EvaluationResult) => (e.calibration ? `${(e.calibration.ece * 100).toFixed(1)} %` : '—');
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

  doc.addPage();
  heading(doc, 'Confusion matrix');
  para(doc, `Rows: true class; columns: predicted class; ${ev.testPredictions} test predictions.`);
  para(doc, 'Counts');
  confusionFigure(doc, ev.classes, ev.confusion, false);
  para(doc, 'Row-normalised (share of each true class)');
  confusionFigure(doc, ev.classes, ev.confusion, true);

  doc.addPage();
  heading(doc, 'Learning curve');
  if (input.curve.length) {
    para(
      doc,
      'Accuracy at 1, 2, 5, 10 and 20 labelled images per class (few-shot episodes; the band is the 95 % interval). A curve still rising at the right means more labelled images would help.',
    );
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
    heading(doc, `ROC curve (${ev.classes[1]} against ${ev.classes[0]})`);
    lineChart(
      doc,
      input.roc.map((p) => ({ x: p.fpr, y: p.tpr })),
      { width: 220, height: 180, xLabel: 'false-positive rate', diagonal: true },
    );
  }

  const wrong = ev.predictions.filter((p) => p.truth !== p.predicted).slice(0, 24);
  doc.addPage();
  heading(doc, 'Misclassified examples');
  if (!wrong.length) para(doc, 'No test image was misclassified.');
  else {
    para(
      doc,
      `${ev.predictions.filter((p) => p.truth !== p.predicted).length} test images were misclassified; up to 24 are shown, with the predicted probability.`,
    );
    const size = 96;
    const cols = 4;
    const top = doc.y;
    for (const [k, p] of wrong.entries()) {
      const img = p.id === undefined ? null : project.images.get(p.id);
      const bytes = img ? project.images.bytes(img.sha256) : null;
      const x = MARGIN + (k % cols) * (size + GAP);
      const y = top + Math.floor(k / cols) * (size + 34);
      if (y + size + 34 > doc.page.height - MARGIN) break;
      if (bytes) {
        // Re-encoded pixels only: EXIF, ICC comments and file names do not travel into the report.
        const thumb = await decoder(await windowed(bytes, modelHighBitDepth(model)))
          .resize(size, size, { fit: 'contain', background: '#ffffff' })
          .jpeg({ quality: 80 })
          .toBuffer();
        doc.image(thumb, x, y, { width: size, height: size });
      }
      doc
        .font('body')
        .fontSize(7)
        .fillColor('#000')
        .text(
          `true ${ev.classes[p.truth]}\npredicted ${ev.classes[p.predicted]} (${((p.probabilities[p.predicted] ?? 0) * 100).toFixed(0)} %)`,
          x,
          y + size + 2,
          { width: size + 20, lineBreak: true },
        );
    }
    doc.x = MARGIN;
  }

  doc.addPage();
  heading(doc, '4. Limitations');
  for (const l of limitations(ev, counts, input.warnings)) para(doc, `• ${l}`);
  doc.end();
  return done;
}
