// The service's start and stop in the project's audit trail. The service holds no write lock while it
// runs (training or an import may go on meanwhile); each entry is written through a short write open, so
// it takes its turn like any other writer.

import { FewShotError } from '../../../shared/errors.ts';
import { withProject } from '../projects.ts';

/**
 * Appends one entry. While another program has the project open for writing (PROJECT_IN_USE), tries
 * again every second for up to `waitMs`, then gives up with that error.
 */
export async function recordServeEvent(
  file: string,
  action: 'serve.start' | 'serve.stop',
  details: Record<string, unknown>,
  waitMs = 0,
): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      await withProject(file, async (p) => p.db.transaction(() => p.audit.append(action, details))());
      return;
    } catch (e) {
      if (!(e instanceof FewShotError && e.code === 'PROJECT_IN_USE') || Date.now() >= deadline) throw e;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}
