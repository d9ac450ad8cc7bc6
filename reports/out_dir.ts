/**
 * The output folder (--out): checked before any search starts, so a bad one costs the user nothing;
 * the reports already in it, and clearing them (--clean).
 */

import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statfsSync,
  statSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

/** An output folder the suite cannot use; the message names it and why. */
export class OutDirError extends Error {
  override readonly name = 'OutDirError';
}

/**
 * statfs(2) f_type of the pseudo file systems (linux/magic.h): files there are kernel interfaces,
 * not storage, and writing reports into them hangs (procfs) or fails late.
 */
const PSEUDO_FS: Readonly<Record<number, string>> = {
  0x9fa0: 'procfs',
  0x62656572: 'sysfs',
  0x1cd1: 'devpts',
  0x64626720: 'debugfs',
  0x74726163: 'tracefs',
  0x73636673: 'securityfs',
  0x27e0eb: 'cgroup',
  0x63677270: 'cgroup2',
  0xcafe4a11: 'bpf',
  0x6e736673: 'nsfs',
  0x42494e4d: 'binfmt_misc',
  0x5a3c69f0: 'apparmorfs',
  0xf97cff8c: 'selinuxfs',
  0xde5e81e4: 'efivarfs',
  0x47504a87: 'pstore',
};

/** The pseudo file system `path` (or its nearest existing ancestor) lives on, or null. */
export function pseudoFileSystem(path: string): string | null {
  let p = resolve(path);
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  const type = Number(statfsSync(p).type);
  return PSEUDO_FS[type] ?? null;
}

/**
 * Makes sure `out` is a directory the suite can write reports into, creating it if needed: not on a
 * pseudo file system, not a file, writable. Throws an OutDirError naming the problem.
 */
export function prepareOutDir(out: string, flag = '--out'): void {
  const abs = resolve(out);
  const fs = pseudoFileSystem(abs);
  if (fs !== null)
    throw new OutDirError(`${flag} ${out}: on ${fs}, a pseudo file system; choose a directory on a disk`);
  let p = abs;
  while (!existsSync(p)) p = dirname(p);
  if (!statSync(p).isDirectory())
    throw new OutDirError(`${flag} ${out}: ${p === abs ? 'is' : `${p} is`} a file, not a directory`);
  try {
    accessSync(p, constants.W_OK | constants.X_OK);
  } catch {
    throw new OutDirError(`${flag} ${out}: ${p === abs ? 'not writable' : `${p} is not writable`}`);
  }
  try {
    mkdirSync(abs, { recursive: true });
  } catch (e) {
    throw new OutDirError(
      `${flag} ${out}: cannot create it: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}

/** The report folders in `out` (each holds a report.json), by id. */
export function existingReports(out: string): string[] {
  let names: string[];
  try {
    names = readdirSync(out);
  } catch {
    return [];
  }
  return names.filter((n) => !n.startsWith('.') && existsSync(join(out, n, 'report.json'))).sort();
}

/**
 * Removes the report folders in `out` and what an interrupted write left (`.<id>.tmp-*`), nothing
 * else: vitest and Stryker write their results beside them.
 */
export function clearReports(out: string): string[] {
  const ids = existingReports(out);
  for (const id of ids) rmSync(join(out, id), { recursive: true, force: true });
  for (const n of readdirSync(out))
    if (/^\..+\.(tmp|old)-/.test(n)) rmSync(join(out, n), { recursive: true, force: true });
  return ids;
}

/**
 * Checks a file the run will write at the end (--json FILE, --junit FILE) before it starts: its
 * folder exists and is writable, not on a pseudo file system, and the path is not a folder.
 */
export function checkOutputFile(flag: string, path: string): void {
  const abs = resolve(path);
  const fs = pseudoFileSystem(abs);
  if (fs !== null) throw new OutDirError(`${flag} ${path}: on ${fs}, a pseudo file system; choose a file on a disk`);
  if (existsSync(abs) && statSync(abs).isDirectory()) throw new OutDirError(`${flag} ${path}: is a directory`);
  const dir = dirname(abs);
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new OutDirError(`${flag} ${path}: no such directory ${dirname(path)}`);
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch {
    throw new OutDirError(`${flag} ${path}: ${dirname(path)} is not writable`);
  }
}

/** Writes a file whole or not at all: into a temporary file beside it, then renamed over it. */
export function writeFileAtomic(path: string, text: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
