// Types for eslint.config.js, which test/lint imports to show its rules failing.
import type { Linter } from 'eslint';

export declare const layers: Linter.Config;
export declare const matchersReadNoText: Linter.Config;
declare const config: Linter.Config[];
export default config;
