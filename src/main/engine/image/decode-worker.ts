// Entry of a decode child process (see decode-pool.ts).

import { serveDecodeTasks, validateTask } from './decode-task.ts';

serveDecodeTasks(validateTask);
