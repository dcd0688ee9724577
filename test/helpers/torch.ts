// Whether real PyTorch is here to serve as the reference (Debian's python3-torch, run with /usr/bin/python3).

import { spawnSync } from 'node:child_process';

export const PYTHON = '/usr/bin/python3';

function importable(modules: string): boolean {
  const r = spawnSync(PYTHON, ['-c', `import ${modules}`], { stdio: 'ignore', timeout: 60_000 });
  return r.status === 0;
}

const torchPresent = importable('torch, torchvision, numpy, PIL');
if (!torchPresent)
  console.warn(
    `\n*** ${PYTHON} cannot import torch/torchvision (apt-get install python3-torch python3-torchvision): tests against PyTorch are SKIPPED ***\n`,
  );

/** A skip reason for node:test when PyTorch is missing, else false. */
export const needsTorch: string | false = torchPresent
  ? false
  : `needs PyTorch (${PYTHON} -c "import torch, torchvision" failed)`;

const pythonPresent = spawnSync(PYTHON, ['-c', 'import zipfile, pickle'], { stdio: 'ignore' }).status === 0;
export const needsPython: string | false = pythonPresent ? false : `needs ${PYTHON}`;

/** Runs a Python script; throws with its stderr when it fails. */
export function runPython(script: string, args: string[], timeoutMs = 600_000): string {
  const r = spawnSync(PYTHON, [script, ...args], { encoding: 'utf8', timeout: timeoutMs });
  if (r.status !== 0) throw new Error(`${script} failed (${r.status ?? r.signal}):\n${r.stderr}`);
  return r.stdout;
}
