import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jobLine } from '../../src/shared/job-summary.ts';
import type { ImportSummary } from '../../src/shared/domain.ts';

const imported = (over: Partial<ImportSummary>): ImportSummary => ({
  root: '/data/cells',
  filesSeen: 5,
  added: 5,
  alreadyPresent: 0,
  duplicates: 0,
  rejected: [],
  perClass: {},
  groupsAssigned: 0,
  groupsUnmatched: 0,
  multiPage: 0,
  dim16Bit: 0,
  ...over,
});

test('an import says its own counts, and nothing imported is a warning, not a success', () => {
  assert.deepEqual(jobLine('import', imported({})), {
    text: '5 new images, 0 already present',
    tone: 'good',
  });
  assert.deepEqual(jobLine('import', imported({ filesSeen: 0, added: 0 })), {
    text: 'no images found in the folder',
    tone: 'warning',
  });
  const again = jobLine('import', imported({ added: 0, alreadyPresent: 1133, filesSeen: 1133 }));
  assert.equal(again.text, '0 new images, 1,133 already present');
  assert.equal(again.tone, 'warning');
  const rejected = jobLine(
    'import',
    imported({
      added: 1,
      rejected: [1, 2, 3, 4].map((i) => ({
        path: `x${i}.png`,
        code: 'CORRUPT_IMAGE' as const,
        message: 'bad',
      })),
    }),
  );
  assert.equal(rejected.text, '1 new image, 0 already present, 4 rejected');
  assert.equal(rejected.tone, 'warning');
});

test('a batch with errors is a warning with its counts', () => {
  const line = jobLine('batch', {
    runId: 'r',
    resumed: false,
    files: 10,
    classifiedNow: 10,
    alreadyDone: 0,
    ok: 7,
    uncertain: 2,
    errors: 1,
    perClass: {},
    imagesPerSecond: 5,
    seconds: 2,
    csv: '/out/x.csv',
  });
  assert.deepEqual(line, { text: '10 files, 7 classified, 2 uncertain, 1 error', tone: 'warning' });
});
