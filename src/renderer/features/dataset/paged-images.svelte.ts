// The Dataset grid's images, fetched a page at a time as they scroll into view (never the whole data
// set on every change), with their ids for selections that span pages.

import type { ImageItem } from '../../../shared/contract.ts';
import { app } from '../../lib/app.svelte.ts';

export interface ImageQuery {
  className?: string | null;
  excluded?: boolean;
  search?: string;
}

const PAGE = 200;

export class PagedImages {
  total = $state(0);
  /** Loaded pages by page number; a page not here is fetched when asked for. */
  pages = $state<Record<number, ImageItem[]>>({});
  private query: ImageQuery = {};
  private generation = 0;
  // Bookkeeping only, never rendered: deliberately not reactive.
  // eslint-disable-next-line svelte/prefer-svelte-reactivity
  private loading = new Set<number>();
  private ids: Promise<number[]> | null = null;

  /** Starts over for a new filter or after the data changed; loads the first page. */
  async reset(query: ImageQuery): Promise<void> {
    this.query = query;
    this.generation++;
    this.pages = {};
    this.loading.clear();
    this.ids = null;
    await this.load(0);
  }

  at(index: number): ImageItem | undefined {
    return this.pages[Math.floor(index / PAGE)]?.[index % PAGE];
  }

  /** Makes sure the rows from `first` to `last` (indexes) are loaded or loading. */
  ensure(first: number, last: number): void {
    for (let p = Math.floor(first / PAGE); p <= Math.floor(Math.max(first, last) / PAGE); p++)
      if (!this.pages[p] && !this.loading.has(p) && p * PAGE < this.total) void this.load(p);
  }

  /** Ids from index a to b inclusive, in grid order (a shift-click or select-all across pages). */
  async idsBetween(a: number, b: number): Promise<number[]> {
    this.ids ??= app.call('dataset.ids', this.query).then((r) => r?.ids ?? []);
    return (await this.ids).slice(a, b + 1);
  }

  private async load(page: number): Promise<void> {
    const generation = this.generation;
    this.loading.add(page);
    const r = await app.call('dataset.images', { ...this.query, offset: page * PAGE, limit: PAGE });
    this.loading.delete(page);
    if (!r || generation !== this.generation) return;
    this.total = r.total;
    this.pages[page] = r.images;
  }
}
