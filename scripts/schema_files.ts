/** Each exported JSON Schema file and the zod schema it comes from. */
import { bugsResultsJsonSchema, compareResultsJsonSchema, startResultsJsonSchema } from '../cli/results.js';
import { reportJsonSchema } from '../reports/file.js';

export const SCHEMA_FILES: Readonly<Record<string, () => unknown>> = {
  'cli/results.schema.json': startResultsJsonSchema,
  'cli/bugs.schema.json': bugsResultsJsonSchema,
  'cli/compare.schema.json': compareResultsJsonSchema,
  'reports/report.schema.json': reportJsonSchema,
};
