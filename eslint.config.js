// Type-aware lint for every layer, plus the layer rules: which room may import what.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeBuiltins = {
  group: ['node:*'],
  message: 'src/shared and the renderer run without Node: no node:* imports.',
};
const electron = { name: 'electron', message: 'Only src/main/electron and src/preload may import electron.' };

export default tseslint.config(
  { ignores: ['node_modules', 'dist', '.cache', 'test-results', 'src/renderer/**/*.svelte'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': ['error', { paths: [electron] }],
    },
  },
  {
    files: ['src/shared/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [electron],
          patterns: [
            nodeBuiltins,
            {
              group: ['**/main/**', '**/renderer/**', '**/cli/**', '**/preload/**'],
              message: 'src/shared imports nothing from other layers.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/main/store/**', 'src/main/engine/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [electron],
          patterns: [
            {
              group: ['**/renderer/**', '**/electron/**', '**/host/**', '**/cli/**'],
              message: 'The store and engine depend on nothing above them.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/renderer/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [electron],
          patterns: [
            nodeBuiltins,
            {
              group: ['**/main/**', '**/cli/**', '**/preload/**'],
              message: 'The renderer talks to the host through lib/api.ts only.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/main/electron/**', 'src/preload/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly' },
    },
  },
);
