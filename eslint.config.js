// Type-aware lint for every layer, plus the house rules: which room may import what (import zones), no
// import cycles, and the Svelte components linted like the rest.
import js from '@eslint/js';
import importX from 'eslint-plugin-import-x';
import svelte from 'eslint-plugin-svelte';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const nodeBuiltins = {
  group: ['node:*'],
  message: 'src/shared and the renderer run without Node: no node:* imports.',
};
const electron = { name: 'electron', message: 'Only src/main/electron and src/preload may import electron.' };

/** The rooms, lowest first; each may import the ones its zone does not list. */
const zones = [
  {
    target: './src/shared',
    from: ['./src/main', './src/renderer', './src/cli', './src/preload'],
    message: 'src/shared is the contract: it imports nothing from other layers.',
  },
  {
    target: './src/main/store',
    from: ['./src/main/engine', './src/main/services', './src/main/host', './src/main/electron', './src/cli'],
    message: 'The store depends only on src/shared.',
  },
  {
    target: './src/main/engine',
    from: ['./src/main/services', './src/main/host', './src/main/electron', './src/cli'],
    message: 'The engine depends on the store and src/shared only.',
  },
  {
    target: './src/main/services',
    from: ['./src/main/host', './src/main/electron', './src/cli'],
    message: 'The use cases are called by the host and the CLI, never the other way round.',
  },
  {
    target: './src/main/host',
    from: ['./src/main/engine', './src/main/electron', './src/cli'],
    message: 'Host handlers call the use cases (src/main/services), not the engine.',
  },
  {
    target: './src/cli',
    from: ['./src/main/engine', './src/main/store', './src/main/host', './src/main/electron'],
    message: 'CLI commands call the use cases (src/main/services), not the engine or the store.',
  },
  {
    target: './src/renderer',
    from: ['./src/main', './src/cli', './src/preload'],
    message: 'The renderer talks to the host through lib/api.ts only.',
  },
  {
    target: './src/preload',
    from: ['./src/main', './src/cli', './src/renderer'],
    message: 'The preload exposes the contract and nothing else.',
  },
];

const rules = {
  '@typescript-eslint/no-explicit-any': 'error',
  '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
  'import-x/no-restricted-paths': ['error', { zones }],
  'import-x/no-cycle': ['error', { ignoreExternal: true }],
};

export default tseslint.config(
  { ignores: ['node_modules', 'dist', '.cache', 'test-results'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver': { node: { extensions: ['.ts', '.js', '.mjs', '.svelte'] } },
      // Other modules are parsed as TypeScript, so the cycle check can follow their imports.
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/extensions': ['.ts', '.js', '.mjs'],
    },
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      ...rules,
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/require-await': 'off',
      'no-restricted-imports': ['error', { paths: [electron] }],
    },
  },
  {
    files: ['src/shared/**', 'src/renderer/**'],
    rules: { 'no-restricted-imports': ['error', { paths: [electron], patterns: [nodeBuiltins] }] },
  },
  {
    files: ['src/main/electron/**', 'src/preload/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
  // Svelte components: the plugin's rules, TypeScript inside <script>, the same zones and cycle check.
  ...svelte.configs['flat/recommended'],
  {
    files: ['**/*.svelte', '**/*.svelte.ts'],
    languageOptions: {
      globals: globals.browser,
      parserOptions: { parser: tseslint.parser, extraFileExtensions: ['.svelte'] },
    },
  },
  {
    files: ['**/*.svelte'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: globals.browser,
      parserOptions: { parser: tseslint.parser, extraFileExtensions: ['.svelte'], projectService: false },
    },
    rules: {
      ...tseslint.configs.disableTypeChecked.rules,
      ...rules,
      'no-restricted-imports': ['error', { paths: [electron], patterns: [nodeBuiltins] }],
    },
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
