// Imported first: zod must not probe `new Function` (its JIT), which the renderer's CSP forbids.
import { z } from 'zod';

z.config({ jitless: true });
