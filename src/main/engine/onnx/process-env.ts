// The environment of the processes that run the models. ONNX Runtime's Node binding copies every output
// into a fresh JavaScript buffer, and glibc hands large freed blocks straight back to the kernel, so each
// training step faults tens of megabytes of pages in again (a ResNet18 layer4 run: ~370 k page faults, a
// seventh of its time in the kernel). glibc's tunables keep such blocks in the heap and back the heap with
// transparent huge pages: the same run then takes ~25 k faults and about a tenth less time. glibc reads
// them only when a process starts, so they go into the environment of the processes the app starts (the
// browser host, Electron and its engine process, the benchmark's runs), never set from inside one.

/** The tunables, and why each: blocks up to 32 MiB come from the heap, up to 256 MiB of it stays. */
export const MALLOC_TUNABLES: Readonly<Record<string, string>> = {
  'glibc.malloc.hugetlb': '1', // madvise the heap for transparent huge pages: 512× fewer faults
  'glibc.malloc.mmap_threshold': String(32 << 20), // ORT's outputs (a layer4 weight: 9 MiB) reuse memory
  'glibc.malloc.trim_threshold': String(256 << 20), // freed memory is returned above this, not at once
  'glibc.malloc.top_pad': String(64 << 20), // the heap grows in steps this large
};

/**
 * `env` with the tunables added to GLIBC_TUNABLES (on Linux; elsewhere, or with FEWSHOT_MALLOC=default,
 * `env` unchanged). A tunable already set there is kept as it is.
 */
export function withMallocTunables(
  env: NodeJS.ProcessEnv,
  platform: NodeJS.Platform = process.platform,
): NodeJS.ProcessEnv {
  if (platform !== 'linux' || env.FEWSHOT_MALLOC === 'default') return env;
  const current = (env.GLIBC_TUNABLES ?? '').split(':').filter((t) => t.includes('='));
  const set = new Set(current.map((t) => t.slice(0, t.indexOf('='))));
  const added = Object.entries(MALLOC_TUNABLES)
    .filter(([k]) => !set.has(k))
    .map(([k, v]) => `${k}=${v}`);
  if (added.length === 0) return env;
  return { ...env, GLIBC_TUNABLES: [...current, ...added].join(':') };
}
