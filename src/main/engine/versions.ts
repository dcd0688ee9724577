// Versions of the app and the libraries whose numbers a result depends on, recorded with every model.

import { createRequire } from 'node:module';
import os from 'node:os';
import sharp from 'sharp';

const require = createRequire(import.meta.url);

function pkgVersion(name: string): string {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function softwareVersions(): Record<string, string> {
  return {
    app: (require('../../../package.json') as { version: string }).version,
    node: process.versions.node,
    'onnxruntime-node': pkgVersion('onnxruntime-node'),
    sharp: sharp.versions.sharp ?? pkgVersion('sharp'),
    libvips: sharp.versions.vips,
    'better-sqlite3': pkgVersion('better-sqlite3'),
    platform: `${process.platform}-${process.arch}`,
    cpu: os.cpus()[0]?.model ?? 'unknown',
  };
}
