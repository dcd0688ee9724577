// What a finished job did, in one line of its own counts: every job's progress bar ends with this rather
// than a bare "done", so an import of nothing or a batch of errors never reads as a success.

import type { JobKind, JobResults } from './jobs.ts';

export interface JobLine {
  text: string;
  /** Finished, but with something to look at: nothing happened, or some of the work failed. */
  tone: 'good' | 'warning';
}

function n(count: number, one: string, many = `${one}s`): string {
  return `${count.toLocaleString('en-GB')} ${count === 1 ? one : many}`;
}

function base(path: string): string {
  return path.slice(Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\')) + 1);
}

export function jobLine<K extends JobKind>(kind: K, result: JobResults[K]): JobLine {
  const r: JobResults[JobKind] = result;
  switch (kind) {
    case 'import': {
      const x = r as JobResults['import'];
      if (x.filesSeen === 0) return { text: 'no images found in the folder', tone: 'warning' };
      const parts = [
        `${n(x.added, 'new image')}`,
        `${x.alreadyPresent.toLocaleString('en-GB')} already present`,
      ];
      if (x.duplicates) parts.push(n(x.duplicates, 'duplicate'));
      if (x.rejected.length) parts.push(`${x.rejected.length.toLocaleString('en-GB')} rejected`);
      return { text: parts.join(', '), tone: x.rejected.length || x.added === 0 ? 'warning' : 'good' };
    }
    case 'features': {
      const x = r as JobResults['features'];
      return {
        text: `${n(x.computed, 'image')} computed, ${x.fromCache.toLocaleString('en-GB')} from the cache${x.failed ? `, ${x.failed} failed` : ''}`,
        tone: x.failed ? 'warning' : 'good',
      };
    }
    case 'checks': {
      const x = r as JobResults['checks'];
      return x.warnings.length
        ? { text: `${n(x.warnings.length, 'finding')} to look at`, tone: 'warning' }
        : { text: 'no duplicates, leakage or balance problems', tone: 'good' };
    }
    case 'train': {
      const x = r as JobResults['train'];
      return { text: `trained on ${n(x.images, 'image')} in ${x.seconds.toFixed(1)} s`, tone: 'good' };
    }
    case 'evaluate':
    case 'review': {
      const x = (kind === 'review' ? (r as JobResults['review']).evaluation : r) as JobResults['evaluate'];
      const tested = x.confusion.flat().reduce((a, b) => a + b, 0);
      return { text: `${n(tested, 'test prediction')} scored`, tone: 'good' };
    }
    case 'curve': {
      const x = r as JobResults['curve'];
      return {
        text: `${n(x.points.length, 'point')} on the curve`,
        tone: x.points.length ? 'good' : 'warning',
      };
    }
    case 'batch': {
      const x = r as JobResults['batch'];
      const parts = [n(x.files, 'file'), `${x.ok.toLocaleString('en-GB')} classified`];
      if (x.uncertain) parts.push(`${x.uncertain.toLocaleString('en-GB')} uncertain`);
      if (x.errors) parts.push(n(x.errors, 'error'));
      return { text: parts.join(', '), tone: x.errors || x.files === 0 ? 'warning' : 'good' };
    }
    case 'report': {
      const x = r as JobResults['report'];
      return { text: `${base(x.out)} written (${Math.ceil(x.bytes / 1024)} KB)`, tone: 'good' };
    }
    case 'export': {
      const x = r as JobResults['export'];
      return {
        text: `${n(x.files.length, 'file')} written; ${x.parity.sameClass}/${x.parity.images} images give the same class in the export`,
        tone: x.parity.passed ? 'good' : 'warning',
      };
    }
    case 'audit-export': {
      const x = r as JobResults['audit-export'];
      return { text: `${n(x.entries, 'entry', 'entries')} written to ${base(x.out)}`, tone: 'good' };
    }
    case 'backbone-add': {
      const x = r as JobResults['backbone-add'];
      return { text: `${x.id} installed (${x.architecture}, ${x.featureDim} features)`, tone: 'good' };
    }
    case 'train-estimate':
      return { text: 'measured', tone: 'good' };
    case 'embeddings': {
      const x = r as JobResults['embeddings'];
      return {
        text: `${n(x.rows, 'row')} written${x.skipped.length ? `, ${x.skipped.length} skipped` : ''}`,
        tone: x.skipped.length ? 'warning' : 'good',
      };
    }
    case 'try': {
      const x = r as JobResults['try'];
      return { text: `${x.predicted}`, tone: x.uncertain ? 'warning' : 'good' };
    }
    case 'suggest': {
      const x = r as JobResults['suggest'];
      return {
        text: `${n(x.suggestions.length, 'suggestion')}${x.failed.length ? `, ${x.failed.length} could not be read` : ''}`,
        tone: x.failed.length ? 'warning' : 'good',
      };
    }
  }
  return { text: 'done', tone: 'good' };
}
