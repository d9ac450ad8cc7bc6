import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SCHEMA_FILES } from '../../scripts/schema_files.js';

describe('the exported JSON Schema files', () => {
  it.each(Object.keys(SCHEMA_FILES))('%s is the one its zod schema gives (npm run schemas rewrites it)', (path) => {
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(SCHEMA_FILES[path]!());
  });
});
