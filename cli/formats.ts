/** The versioned names of the machine-readable outputs (kept apart from the zod schemas so a command need not load zod to print one). */
export const RESULTS_FORMAT = 'vpmu-conformance/results@4';
export const BUGS_FORMAT = 'vpmu-conformance/bugs@2';
export const COMPARE_FORMAT = 'vpmu-conformance/compare@1';
