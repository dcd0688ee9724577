// The batch report: which folder (by name, never its full path), which model, how many files went to
// each class, which were uncertain or failed and why, and how fast.

import { ttaLabel, ttaOfRun } from '../../../shared/tta.ts';
import path from 'node:path';
import { FewShotError } from '../../../shared/errors.ts';
import type { ClassifySummary } from '../../../shared/results.ts';
import type { Project } from '../../store/project.ts';
import { softwareVersions } from '../versions.ts';
import { pct } from './format.ts';
import { finish, heading, newDocument, para, table } from './pdf.ts';

/** Failed files listed in full in the PDF; the CSV has them all. */
export const FAILED_LISTED = 200;
/** Uncertain files listed in the PDF; the CSV has them all. */
export const UNCERTAIN_LISTED = 500;

export async function renderBatchReport(
  project: Project,
  runId: string,
  options: { compress?: boolean; now?: Date } = {},
): Promise<Buffer> {
  const run = project.batches.get(runId) ?? project.batches.find(runId);
  if (!run) throw new FewShotError('NOT_FOUND', `No batch run "${runId}" in this project.`);
  const model = project.models.get(run.modelId);
  const job = run.jobId ? project.jobs.get(run.jobId) : null;
  const result = (job?.result ?? null) as ClassifySummary | null;
  const rows = [...project.batches.iterate(run.id)];
  const ok = rows.filter((r) => r.status === 'ok');
  const uncertain = rows.filter((r) => r.status === 'uncertain');
  const failed = rows.filter((r) => r.status === 'error');
  const perClass = new Map<string, { ok: number; uncertain: number }>();
  for (const r of [...ok, ...uncertain]) {
    const e = perClass.get(r.predicted as string) ?? { ok: 0, uncertain: 0 };
    if (r.status === 'ok') e.ok++;
    else e.uncertain++;
    perClass.set(r.predicted as string, e);
  }
  const minConfidence = typeof run.params.minConfidence === 'number' ? run.params.minConfidence : 0.5;
  const sw = softwareVersions();

  const { doc, done } = newDocument(
    'FewShot Lab batch classification report',
    options.compress === undefined ? {} : { compress: options.compress },
  );
  doc.font('bold').fontSize(20).text('Batch classification report');
  para(doc, `Project: ${project.meta('name') ?? path.basename(project.file, path.extname(project.file))}`);
  para(doc, `Folder: ${path.basename(run.root)} (paths below are relative to it)`);
  para(doc, `Date: ${(options.now ?? new Date()).toISOString().slice(0, 10)} · run ${run.id}`);
  para(doc, `Software: FewShot Lab ${sw.app}; onnxruntime-node ${sw['onnxruntime-node']}; sharp ${sw.sharp}`);

  heading(doc, 'Model');
  if (model) {
    // A model named after its strategy and backbone ("linear on squeezenet…") is described once.
    const what = `${model.strategy} on ${model.backboneId}`;
    para(
      doc,
      `${model.name}${model.name === what ? '' : ` (${what})`}; model ${model.id}; backbone sha256 ${model.backboneSha256}; classes ${model.classes.join(', ')}; seed ${model.seed}.`,
    );
  } else para(doc, `Model ${run.modelId} (no longer in the project).`);
  const tta = ttaOfRun(run.params);
  para(
    doc,
    tta
      ? `Views: ${ttaLabel(tta.kind)}; temperature ${tta.temperature === null ? "the model's own" : tta.temperature.toFixed(3)}, from ${tta.temperatureFrom}.`
      : 'Views: single view (centre crop).',
  );

  heading(doc, 'Summary');
  table(
    doc,
    ['Files', 'Classified', `Uncertain (< ${pct(minConfidence, 0)})`, 'Failed', 'Images/s'],
    [
      [
        String(rows.length),
        String(ok.length),
        String(uncertain.length),
        String(failed.length),
        result ? result.imagesPerSecond.toFixed(1) : '—',
      ],
    ],
    [80, 90, 130, 80, 110],
  );
  table(
    doc,
    ['Predicted class', 'Confident', 'Uncertain', 'Total'],
    [...perClass.entries()]
      .sort()
      .map(([c, e]) => [c, String(e.ok), String(e.uncertain), String(e.ok + e.uncertain)]),
    [180, 100, 100, 100],
  );

  heading(doc, `Uncertain files (${uncertain.length})`);
  if (uncertain.length)
    table(
      doc,
      ['File', 'Predicted', 'Confidence'],
      uncertain.slice(0, UNCERTAIN_LISTED).map((r) => [r.relPath, r.predicted ?? '', pct(r.confidence ?? 0)]),
      [300, 120, 75],
    );
  else para(doc, 'None.');
  if (uncertain.length > UNCERTAIN_LISTED)
    para(
      doc,
      `The first ${UNCERTAIN_LISTED} are listed; ${uncertain.length - UNCERTAIN_LISTED} more are in the CSV.`,
    );

  heading(doc, `Failed files (${failed.length})`);
  if (failed.length > FAILED_LISTED)
    para(
      doc,
      `The first ${FAILED_LISTED} are listed with their full message; ${failed.length - FAILED_LISTED} more are in the CSV.`,
    );
  // Cells wrap, so each message is shown whole.
  if (failed.length)
    table(
      doc,
      ['File', 'Reason', 'Details'],
      failed.slice(0, FAILED_LISTED).map((r) => [r.relPath, r.errorCode ?? '', r.errorMessage ?? '']),
      [170, 95, 230],
    );
  else para(doc, 'None.');
  finish(doc);
  return done;
}
