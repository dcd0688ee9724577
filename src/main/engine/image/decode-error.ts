// The typed error of a file that cannot become an image of the project.

import type { RejectCode } from '../../../shared/domain.ts';
import { FewShotError } from '../../../shared/errors.ts';

export class ImageError extends FewShotError {
  constructor(
    readonly reject: RejectCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(reject, message, options);
    this.name = 'ImageError';
  }
}
