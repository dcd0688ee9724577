// Recognises an image container from its first bytes, so a failure can be told apart as "not an image",
// "an image we refuse" or "a damaged image".

export type SniffedKind =
  | {
      kind: 'image';
      format: 'jpeg' | 'png' | 'gif' | 'webp' | 'tiff' | 'avif' | 'heif' | 'jp2' | 'jxl' | 'pnm' | 'dicom';
    }
  | { kind: 'unsupported'; format: string; reason: string }
  | { kind: 'unknown' };

function ascii(b: Uint8Array, start: number, end: number): string {
  return String.fromCharCode(...b.subarray(start, Math.min(end, b.length)));
}

export function sniffImage(b: Uint8Array): SniffedKind {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff)
    return { kind: 'image', format: 'jpeg' };
  if (b.length >= 8 && ascii(b, 0, 8) === '\x89PNG\r\n\x1a\n') return { kind: 'image', format: 'png' };
  const head6 = ascii(b, 0, 6);
  if (head6 === 'GIF87a' || head6 === 'GIF89a') return { kind: 'image', format: 'gif' };
  if (ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return { kind: 'image', format: 'webp' };
  const head4 = ascii(b, 0, 4);
  if (head4 === 'II*\0' || head4 === 'MM\0*' || head4 === 'II+\0' || head4 === 'MM\0+')
    return { kind: 'image', format: 'tiff' };
  if (ascii(b, 4, 8) === 'ftyp') {
    const brand = ascii(b, 8, 12);
    if (brand === 'avif' || brand === 'avis') return { kind: 'image', format: 'avif' };
    if (['heic', 'heix', 'hevc', 'heim', 'heis', 'mif1', 'msf1'].includes(brand))
      return { kind: 'image', format: 'heif' };
  }
  if (b.length >= 12 && ascii(b, 4, 8) === 'jP  ') return { kind: 'image', format: 'jp2' };
  if (b.length >= 2 && b[0] === 0xff && b[1] === 0x0a) return { kind: 'image', format: 'jxl' };
  if (b.length >= 12 && ascii(b, 4, 8) === 'JXL ') return { kind: 'image', format: 'jxl' };
  if (
    b.length >= 3 &&
    b[0] === 0x50 &&
    b[1] !== undefined &&
    b[1] >= 0x31 &&
    b[1] <= 0x36 &&
    /\s/.test(String.fromCharCode(b[2] ?? 0))
  )
    return { kind: 'image', format: 'pnm' };
  if (head4 === '%PDF') return { kind: 'unsupported', format: 'pdf', reason: 'PDF documents are not images' };
  if (b.length >= 132 && ascii(b, 128, 132) === 'DICM') return { kind: 'image', format: 'dicom' };
  if (ascii(b, 0, 2) === 'BM')
    return { kind: 'unsupported', format: 'bmp', reason: 'BMP is not supported; save as PNG' };
  const text = ascii(b, 0, 512)
    .replace(/^\uFEFF/, '')
    .trimStart()
    .toLowerCase();
  if (text.startsWith('<') && text.includes('<svg'))
    return {
      kind: 'unsupported',
      format: 'svg',
      reason: 'SVG is blocked: vector files can reference external content',
    };
  return { kind: 'unknown' };
}
