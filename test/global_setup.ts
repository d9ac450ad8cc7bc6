/** The CLI tests run the built command line (dist/), as users do: build it once, before any test file. */
import { ensureBuilt } from '../scripts/build.mjs';

export default async function setup(): Promise<void> {
  await ensureBuilt();
}
