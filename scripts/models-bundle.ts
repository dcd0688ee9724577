// `npm run models:bundle -- --pth resnet18-f37072fd.pth` (or `-- --fetch [--url URL]` on a connected
// build machine): converts torchvision's ResNet18 checkpoint into resources/models/bundled, which the
// installer carries, so the installed app has ResNet18 from its first start without any download.

import { parseArgs } from 'node:util';
import { bundleBackbone, TORCHVISION_RESNET18_URL } from '../src/main/engine/backbones/bundle.ts';

const { values } = parseArgs({
  options: {
    pth: { type: 'string' },
    fetch: { type: 'boolean' },
    url: { type: 'string' },
    resources: { type: 'string' },
    id: { type: 'string' },
  },
});
if (!values.pth && !values.fetch) {
  console.error(
    `usage: npm run models:bundle -- --pth FILE.pth | --fetch [--url URL]  (default URL ${TORCHVISION_RESNET18_URL})`,
  );
  process.exit(2);
}
try {
  await bundleBackbone({
    ...(values.pth ? { pth: values.pth } : {}),
    ...(values.url ? { url: values.url } : {}),
    ...(values.resources ? { resources: values.resources } : {}),
    ...(values.id ? { id: values.id } : {}),
    log: (line) => console.log(line),
  });
} catch (e) {
  const code = (e as { code?: string }).code ?? 'INTERNAL';
  console.error(`models:bundle: ${code}: ${(e as Error).message}`);
  process.exit(1);
}
