export const DIST: string;
export function build(): Promise<void>;
export function stale(): boolean;
export function ensureBuilt(): Promise<void>;
