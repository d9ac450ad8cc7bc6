/** Each exported JSON Schema file and the zod schema it comes from. */
import { startResultsJsonSchema } from '../cli/results.js';
import { reportJsonSchema } from '../reports/file.js';

export const SCHEMA_FILES: Readonly<Record<string, () => unknown>> = {
  'cli/results.schema.json': startResultsJsonSchema,
  'reports/report.schema.json': reportJsonSchema,
};
