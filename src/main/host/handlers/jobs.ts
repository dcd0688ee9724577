// Running and past jobs, cancel, and the audit trail.

import { auditList } from '../../services/audit.ts';
import type { HandlerMap, HostContext } from './types.ts';

type JobsChannel = 'jobs.list' | 'jobs.cancel' | 'audit.list' | 'audit.export';

export function jobsHandlers(ctx: HostContext): HandlerMap<JobsChannel> {
  return {
    'jobs.list': async () => {
      const p = ctx.current();
      return { jobs: p ? ctx.jobs.list(p) : [] };
    },
    'jobs.cancel': async ({ jobId }) => ({ cancelled: ctx.jobs.cancel(jobId) }),
    'audit.list': async ({ limit }) => auditList(ctx.project(), limit),
    'audit.export': async (req) => ({ jobId: ctx.jobs.start(ctx.project(), 'audit-export', req) }),
  };
}
