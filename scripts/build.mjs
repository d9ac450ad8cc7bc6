// Builds the command line into dist/ with esbuild, so that it starts without compiling TypeScript:
// `npm ci` runs it (prepare), and `npm start` and the other scripts rebuild when a source is newer.
// Packages stay external (node_modules is there after `npm ci`); each command is a chunk of its own
// that the entry imports only when asked, so `--help` loads commander alone.
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
export const DIST = join(root, 'dist');
const META = join(DIST, 'meta.json');
/** Files that decide the output besides the sources esbuild read. */
const CONFIG = ['package.json', 'scripts/build.mjs', 'tsconfig.json'];

export async function build() {
  const esbuild = await import('esbuild');
  rmSync(DIST, { recursive: true, force: true });
  const r = await esbuild.build({
    absWorkingDir: root,
    entryPoints: [
      { in: 'cli/vpmu_conformance.ts', out: 'cli' },
      { in: 'cli/check_worker.ts', out: 'check_worker' },
      // The bench times the code npm start runs: built the same way (tsx would wrap every function in a naming helper).
      { in: 'bench/model.ts', out: 'bench' },
    ],
    outdir: DIST,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'warning',
  });
  // Written last: its time is the build's, and it lists what the build read.
  writeFileSync(META, JSON.stringify({ inputs: [...Object.keys(r.metafile.inputs), ...CONFIG] }));
}

/** True when dist/ is missing or older than a file it was built from. */
export function stale() {
  if (!existsSync(META) || !existsSync(join(DIST, 'cli.js'))) return true;
  const built = statSync(META).mtimeMs;
  const { inputs } = JSON.parse(readFileSync(META, 'utf8'));
  return inputs.some((f) => {
    const p = join(root, f);
    // A source that went away changes the build as much as one that changed.
    return !existsSync(p) || statSync(p).mtimeMs > built;
  });
}

export async function ensureBuilt() {
  if (stale()) await build();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await build();
