// Running and past jobs, cancel, and the audit trail.

import { auditList } from '../../services/audit.ts';
import type { HandlerMap, HostContext } from './types.ts';

type JobsChannel = 'jobs.list' | 'jobs.cancel' | 'audit.list' | 'audit.export';

export function jobsHandlers(ctx: HostContext): HandlerMap<JobsChannel> {
  return {
    // The app's own jobs (adding a backbone) are listed with no project open too.
    'jobs.list': async () => ({ jobs: ctx.jobs.list(ctx.current()) }),
    'jobs.cancel': async ({ jobId }) => ({ cancelled: ctx.jobs.cancel(jobId) }),
    'audit.list': async ({ limit }) => auditList(ctx.project(), limit),
    'audit.export': async (req) => ({ jobId: ctx.jobs.start(ctx.project(), 'audit-export', req) }),
  };
}
