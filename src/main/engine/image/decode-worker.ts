// Entry of a decode child process (see decode-pool.ts).

import { serveDecodeTasks, decodeTask } from './decode-task.ts';

serveDecodeTasks(decodeTask);
