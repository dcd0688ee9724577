// The audit trail: the newest entries with the chain's status, and the whole chain exported.

import type { AuditEntryView } from '../../shared/contract.ts';
import { writeChunksAtomic } from '../engine/atomic-file.ts';
import type { Project } from '../store/project.ts';
import { runJob, throwIfCancelled, type UseCaseContext } from './context.ts';

export function auditList(
  p: Project,
  limit: number,
): { entries: AuditEntryView[]; total: number; intact: boolean; brokenAt: number | null } {
  const brokenAt = p.audit.verify();
  return {
    entries: p.audit.latest(limit).map(({ prevHash: _prev, ...e }) => e),
    total: p.audit.count(),
    intact: brokenAt === null,
    brokenAt,
  };
}

/** Every entry with both hashes, streamed to a JSON file, so anyone can recompute the chain. */
export function exportAudit(
  p: Project,
  req: { out: string },
  ctx: UseCaseContext = {},
): Promise<{ out: string; entries: number }> {
  return runJob(p, 'audit-export', req, ctx, async () => {
    const total = p.audit.count();
    const verifiedIntact = p.audit.verify() === null;
    let n = 0;
    function* chunks(): Generator<string> {
      yield `{\n  "project": ${JSON.stringify(p.meta('name'))},\n  "verifiedIntact": ${verifiedIntact},\n  "entries": [`;
      for (const e of p.audit.iterate()) {
        if (n % 1000 === 0) {
          throwIfCancelled(ctx, 'The export');
          ctx.progress?.({ phase: 'writing', done: n, total });
        }
        yield `${n ? ',' : ''}\n    ${JSON.stringify(e)}`;
        n++;
      }
      yield `\n  ]\n}\n`;
    }
    const r = writeChunksAtomic(req.out, chunks());
    return { out: r.out, entries: n };
  });
}
