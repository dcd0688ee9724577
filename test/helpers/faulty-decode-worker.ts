// A decode worker with injected faults: the real validation, except that a file carrying one marker makes
// the process die by SIGSEGV and a file carrying another makes it spin forever — the two ways a native
// decoder fails on hostile input.

import { serveDecodeTasks, decodeTask } from '../../src/main/engine/image/decode-task.ts';
import { CRASH_MARKER, HANG_MARKER } from './decode-faults.ts';

serveDecodeTasks(async (req) => {
  const text = Buffer.from(req.bytes).toString('latin1');
  if (text.includes(CRASH_MARKER)) process.kill(process.pid, 'SIGSEGV');
  if (text.includes(HANG_MARKER)) for (;;);
  return decodeTask(req);
});
