// Test-time augmentation: the views of each image whose probabilities are averaged. 'flip' adds the
// horizontal mirror of the centre crop; 'flip+crops' is torchvision's TenCrop: the centre and the four
// corner crops of the resized image, each also mirrored.

export const TTA_KINDS = ['none', 'flip', 'flip+crops'] as const;
export type TtaKind = (typeof TTA_KINDS)[number];

export type ViewCrop = 'centre' | 'top-left' | 'top-right' | 'bottom-left' | 'bottom-right';

export interface ViewSpec {
  crop: ViewCrop;
  flip: boolean;
}

const CORNERS: ViewCrop[] = ['top-left', 'top-right', 'bottom-left', 'bottom-right'];

/** The views of a kind; the first is always the plain centre crop. */
export function ttaViews(kind: TtaKind): ViewSpec[] {
  if (kind === 'none') return [{ crop: 'centre', flip: false }];
  if (kind === 'flip')
    return [
      { crop: 'centre', flip: false },
      { crop: 'centre', flip: true },
    ];
  return [
    { crop: 'centre', flip: false },
    { crop: 'centre', flip: true },
    ...CORNERS.flatMap((crop) => [
      { crop, flip: false },
      { crop, flip: true },
    ]),
  ];
}

export function isTtaKind(v: unknown): v is TtaKind {
  return typeof v === 'string' && (TTA_KINDS as readonly string[]).includes(v);
}

/** In words, for screens, reports and the model card. */
export function ttaLabel(kind: TtaKind): string {
  if (kind === 'none') return 'single view (centre crop)';
  if (kind === 'flip')
    return 'test-time augmentation: centre crop and its mirror (2 views, probabilities averaged)';
  return 'test-time augmentation: centre and four corner crops, each also mirrored (10 views, probabilities averaged)';
}

export interface RunTta {
  kind: TtaKind;
  views: number;
  /** Null: the model's own temperature (a fine-tuned graph). */
  temperature: number | null;
  temperatureFrom: string;
}

/** The test-time augmentation a batch run used, from its stored parameters; null: single view. */
export function ttaOfRun(params: Record<string, unknown>): RunTta | null {
  const t = params.tta as
    { kind?: unknown; temperature?: unknown; temperatureFrom?: unknown; views?: unknown } | undefined;
  if (!t || !isTtaKind(t.kind) || t.kind === 'none') return null;
  return {
    kind: t.kind,
    views: typeof t.views === 'number' ? t.views : ttaViews(t.kind).length,
    temperature: typeof t.temperature === 'number' ? t.temperature : null,
    temperatureFrom: typeof t.temperatureFrom === 'string' ? t.temperatureFrom : '',
  };
}
