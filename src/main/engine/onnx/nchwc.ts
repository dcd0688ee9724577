// ONNX Runtime's CPU provider has convolution kernels for a blocked channel layout, NCHWc: channels in
// blocks of 8 (AVX2) or 16 (AVX-512), each block's values next to each other. Its graph optimiser rewrites a
// model's convolutions into them only when the weights are constants, as at inference, where they run
// 1.3–1.7× faster than its plain convolutions. A training step's weights are inputs, so the step graph asks
// for these kernels itself (train-graph.ts). Their block size depends on the runtime's build and the CPU,
// so it is asked of the runtime once per process.

import { GraphBuilder } from './builder.ts';
import { encodeModel } from './model.ts';
import { ort } from './session.ts';

/** The operator set of ONNX Runtime's blocked-layout kernels (CPU provider only). */
export const NCHWC_DOMAIN = 'com.microsoft.nchwc';

let block: Promise<number> | null = null;

/**
 * The CPU provider's NCHWc block size, or 0 where it has none (or FEWSHOT_NCHWC=0: the plain kernels, for
 * comparisons). Found by reordering a 4-channel tensor: the runtime pads the channels to one block.
 */
export function nchwcBlockSize(): Promise<number> {
  if (process.env.FEWSHOT_NCHWC === '0') return Promise.resolve(0);
  block ??= probe();
  return block;
}

async function probe(): Promise<number> {
  const b = new GraphBuilder('probe');
  b.input('x', [1, 4, 1, 1]);
  b.opIn(NCHWC_DOMAIN, 'ReorderInput', ['x'], {}, 'y');
  b.output('y');
  try {
    const s = await ort.InferenceSession.create(encodeModel(b.model('fewshot-nchwc-probe')), {
      executionProviders: ['cpu'],
      intraOpNumThreads: 1,
    });
    try {
      const out = await s.run({ x: new ort.Tensor('float32', new Float32Array(4), [1, 4, 1, 1]) });
      const channels = Number(out.y?.dims[1] ?? 0);
      // A block of 4 or less is no blocking at all (the 4 channels come back as they went in).
      return channels >= 8 && (channels & (channels - 1)) === 0 ? channels : 0;
    } finally {
      await s.release();
    }
  } catch {
    return 0;
  }
}
