// ESLint (flat config): typescript-eslint's type-aware recommended rules; prettier owns the layout
// (eslint-config-prettier, last, turns off every rule that would fight it). `npm run lint` runs both.
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.dbc-test/', 'test/fixtures/'] },
  // a disable comment that no longer disables anything is an error, so that none outlives its reason
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  eslint.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // kept on: a forgotten promise is a real bug; `void p` marks the deliberate fire-and-forget calls.
      // node:test's test()/describe() return promises that the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] }] },
      ],
      // `_name` marks a parameter or binding that an interface or a destructuring needs but the body does not use
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
      // off: handlers, fakes and interface implementations are `async` so that they conform to a Promise-returning
      // signature (Handler, RentalSource, Hypervisor...) even when their body happens not to await
      '@typescript-eslint/require-await': 'off',
      // no-control-regex stays on: a regex that matches control characters on purpose (refusing or stripping them)
      // says so with `// eslint-disable-next-line no-control-regex` on the line above, as src/vm/qemu-args.ts does
      // numbers are interpolated into messages everywhere (ports, sizes, ms); the defaults already allow them, this
      // says so explicitly
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      // AbortSignal.reason is typed `any` by the DOM lib; rejecting with it is the standard abort pattern
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingAny: true }],
    },
  },
  {
    // tests and benches read the API's JSON replies as `any` on purpose (`r.body.message.disks.find(...)`): typing
    // every reply would only restate what the assertions check; the web page (ui/) renders those replies the same
    // way. src/ keeps these rules.
    files: ['test/**/*.ts', 'bench/**/*.ts', 'ui/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // off in tests: `String(bad)` names the rejected input in an assertion message, whatever its type
      '@typescript-eslint/no-base-to-string': 'off',
    },
  },
  // plain JavaScript (this file) is not in tsconfig's project: lint it without type information
  { files: ['**/*.js', '**/*.mjs'], extends: [tseslint.configs.disableTypeChecked] },
  prettier,
);
