// ESLint: typescript-eslint's recommended rules, with type information, over src, test and bench.
// Formatting is Prettier's (.prettierrc.json); `npm run lint` runs both, as CI does.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'test/trust/fixtures/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { project: './tsconfig.check.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      // Interfaces are async (BlobStore, MetaStore, verifiers); an implementation that happens to
      // need no await (the memory store, a check that fails early) is still right to be async.
      '@typescript-eslint/require-await': 'off',
      // `_name` marks a value left unused on purpose (a destructured field dropped, say).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
    },
  },
  {
    // vitest's asymmetric matchers (expect.any, expect.stringContaining) are typed `any`.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-unsafe-assignment': 'off' },
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
