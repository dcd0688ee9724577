// Choosing a path for any field that takes one: the system's own dialog in the desktop app, else the
// window's file browser (the browser host lists folders for it). One chooser for the whole window; the
// shell shows its browser while a request is open.

import type { PickRequest } from '../../shared/files.ts';
import { nativePicker } from './api.ts';

export class PathChooser {
  /** The request the window's file browser is showing, if any. */
  request = $state<PickRequest | null>(null);
  private resolve: ((path: string | null) => void) | null = null;

  /** The absolute path chosen, or null when the user cancelled. */
  async choose(request: PickRequest): Promise<string | null> {
    const native = nativePicker();
    if (native) return (await native(request)).path;
    this.finish(null); // a browser still open answers "cancelled" to whoever opened it
    this.request = request;
    return new Promise((resolve) => (this.resolve = resolve));
  }

  /** The file browser's answer. */
  finish(path: string | null): void {
    const resolve = this.resolve;
    this.resolve = null;
    this.request = null;
    resolve?.(path);
  }
}

export const chooser = new PathChooser();
