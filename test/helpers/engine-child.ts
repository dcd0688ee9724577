// The engine as the desktop shell runs it, in a plain child process: the real Backend over the process's
// IPC channel. A request on channel `test.hang` is never answered (a request the crash cuts off), and
// FEWSHOT_TEST_ENGINE_EXIT makes the process die as it starts (a crash loop).

import { serveEngine } from '../../src/main/electron/engine-endpoint.ts';
import type { ToEngine } from '../../src/main/electron/engine-messages.ts';

if (process.env.FEWSHOT_TEST_ENGINE_EXIT) process.exit(Number(process.env.FEWSHOT_TEST_ENGINE_EXIT));
// Goes with the test that started it, as a utility process goes with the app.
process.on('disconnect', () => process.exit(0));

serveEngine(
  {
    post: (message) => process.send?.(message),
    onMessage: (listener) =>
      process.on('message', (m: ToEngine) => {
        if ('channel' in m && m.channel === 'test.hang') return;
        listener(m);
      }),
  },
  { dataDir: process.env.FEWSHOT_DATA_DIR ?? '.', transport: 'electron' },
);
