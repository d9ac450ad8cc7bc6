// Lint: ESLint with typescript-eslint's type-aware rules, and the layers of the design card held by
// import-x: a module imports only from the layers below its own, and no two modules import each
// other with values. (Biome's per-platform binaries are not all on the registry this project
// installs from, which breaks `npm ci`.)
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';

/** The layers, lowest first; each may import from the layers before it and from nothing after. */
const LAYERS = [
  'model/hw',
  'model/host',
  'model/kvm',
  'scenarios',
  'properties',
  'designs',
  'reports',
  ['catalogue', 'compare'],
  'cli',
  'bench',
];

const flat = LAYERS.flat();
const zones = LAYERS.flatMap((layer, i) => {
  const above = LAYERS.slice(i + 1).flat();
  const members = [layer].flat();
  return members.map((m) => ({
    target: `./${m}`,
    // Upward, and sideways between the members of one layer.
    from: [...above, ...members.filter((o) => o !== m), 'test', 'scripts'].map((f) => `./${f}`),
    message: `${m} is below what it imports (layers, lowest first: ${flat.join(' < ')})`,
  }));
});

/** The layer rules, exported so that a test can show them failing on planted imports. */
export const layers = {
  files: ['**/*.ts'],
  plugins: { 'import-x': importX },
  settings: {
    'import-x/extensions': ['.ts'],
    'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
    // Imports name the emitted .js; the resolver finds the .ts beside it.
    'import-x/resolver-next': [createNodeResolver({ extensionAlias: { '.js': ['.ts', '.js'] } })],
  },
  rules: {
    'import-x/no-restricted-paths': ['error', { zones }],
    // Type-only imports are ignored: a type cycle costs nothing at run time.
    'import-x/no-cycle': ['error', { ignoreExternal: true }],
    'import-x/no-duplicates': ['error', { 'prefer-inline': true }],
  },
};

/**
 * Matchers decide on typed values, never on words: in the declared divergences, no regular expression, no
 * prefix or suffix test, and no read of a field that holds text for people (what, why, message).
 */
export const matchersReadNoText = {
  files: ['properties/expectations/**/*.ts'],
  rules: {
    'no-restricted-syntax': [
      'error',
      { selector: 'CallExpression[callee.object.regex]', message: 'a matcher decides on typed values, not on text' },
      {
        selector: 'CallExpression[callee.property.name=/^(startsWith|endsWith|match|matchAll|search)$/]',
        message: 'a matcher decides on typed values, not on text',
      },
      {
        selector: 'MemberExpression[property.name=/^(what|why|message)$/]',
        message: 'a matcher decides on typed values, not on display text',
      },
    ],
  },
};

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'coverage/', 'reports/out/', 'scratch/', 'scratch-*/', '.stryker-tmp/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      eqeqeq: 'error',
      'prefer-const': 'error',
    },
  },
  layers,
  matchersReadNoText,
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      parserOptions: { projectService: false, program: null },
      globals: { process: 'readonly', console: 'readonly' },
    },
  },
);
