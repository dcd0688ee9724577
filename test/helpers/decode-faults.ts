// Markers that make the fault-injecting decode worker (faulty-decode-worker.ts) crash or hang.

export const CRASH_MARKER = 'FEWSHOT-TEST-CRASH-DECODER';
export const HANG_MARKER = 'FEWSHOT-TEST-HANG-DECODER';
