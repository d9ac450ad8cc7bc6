/** Each exported JSON Schema file and the zod schema it comes from. */
import { startResultsJsonSchema } from '../cli/results.js';

export const SCHEMA_FILES: Readonly<Record<string, () => unknown>> = {
  'cli/results.schema.json': startResultsJsonSchema,
};
