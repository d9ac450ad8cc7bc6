/**
 * `npm run reproducers`: writes the reproducers (standalone C and KVM selftest) of every filed
 * finding (reports/filed/*.json) and of every catalogue row (catalogue/regression.ts).
 *
 * `npm run reproducers:check [-- --all] [-- --kernel <tree>]`: builds them. Every standalone
 * reproducer of a filed finding and of a fixed-seed sample of generated reports (one per property
 * kind), and with --all of every catalogue row, is compiled with `gcc -O2 -Wall -Werror` against
 * the system's kernel headers; its `--dump-guest` output must be the guest code the model ran;
 * on a machine without /dev/kvm it must exit 77. With --kernel (implies --all), the selftests are
 * also built in that kernel tree's tools/testing/selftests/kvm (6.12's x86_64/, or x86/ from
 * 6.14), which must have run `make headers`; each must exit 4 (KSFT_SKIP) without /dev/kvm.
 * Exit status: 0 all built, 1 something failed to build or misbehaved, 2 bad usage.
 */

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { Command, CommanderError } from 'commander';
import { catalogueReproducers, filedReproducers, guestCode } from '../catalogue/reproducers.js';
import { type Emitted, emitFiles, predictionLine, writeEmitted } from '../reports/emit/files.js';
import { filedFindings, withReproducersSection } from '../reports/emit/filed.js';
import { SAMPLE, sampleFinding } from '../test/reports/emit/sample.js';

function emit(): number {
  const filed = filedFindings();
  filedReproducers().forEach((e, i) => {
    const md = filed[i]!.json.replace(/\.json$/, '.md');
    writeFileSync(md, withReproducersSection(readFileSync(md, 'utf8'), filed[i]!, predictionLine(e.emission)));
  });
  for (const e of [...filedReproducers(), ...catalogueReproducers()]) {
    writeEmitted(e);
    console.log(`${e.repro.path}, ${e.selftest.path}: ${predictionLine(e.emission)}`);
  }
  return 0;
}

/** The sample's reproducers, written into `dir`. */
function sample(dir: string): Emitted[] {
  return SAMPLE.map((s) => {
    const stem = `sample_${s.property.replace(/-/g, '_')}`;
    return emitFiles(sampleFinding(s), {
      repro: join(dir, `${stem}.repro.c`),
      selftest: join(dir, `vpmu_${stem}_test.c`),
    });
  });
}

const run = (cmd: string, args: readonly string[]) => spawnSync(cmd, args, { encoding: 'buffer', maxBuffer: 64 << 20 });

function compileRepros(list: readonly Emitted[], tmp: string): number {
  let bad = 0;
  const kvm = existsSync('/dev/kvm');
  for (const e of list) {
    const src = join(tmp, basename(e.repro.path));
    writeFileSync(src, e.repro.text);
    const bin = join(tmp, basename(e.repro.path, '.c'));
    const cc = run('gcc', ['-O2', '-Wall', '-Werror', '-o', bin, src]);
    if (cc.status !== 0) {
      console.log(`FAIL ${e.repro.path}: gcc\n${cc.stderr.toString()}`);
      bad++;
      continue;
    }
    const dump = run(bin, ['--dump-guest']);
    if (dump.status !== 0 || !dump.stdout.equals(guestCode(e))) {
      console.log(`FAIL ${e.repro.path}: --dump-guest is not the guest code the model ran`);
      bad++;
      continue;
    }
    if (!kvm) {
      const r = run(bin, []);
      if (r.status !== 77) {
        console.log(`FAIL ${e.repro.path}: without /dev/kvm it exits ${r.status}, not 77`);
        bad++;
        continue;
      }
    }
    console.log(`ok   ${e.repro.path} (gcc -O2 -Wall -Werror${kvm ? '' : '; exits 77 without /dev/kvm'})`);
  }
  return bad;
}

function buildSelftests(list: readonly Emitted[], tree: string, tmp: string): number {
  const ksft = join(resolve(tree), 'tools/testing/selftests/kvm');
  if (!existsSync(ksft)) {
    console.error(`reproducers:check: ${tree} has no tools/testing/selftests/kvm`);
    return 1;
  }
  if (!existsSync(join(resolve(tree), 'usr/include/linux/kvm.h'))) {
    console.error(`reproducers:check: run 'make headers' in ${tree} first`);
    return 1;
  }
  const arch = existsSync(join(ksft, 'include/x86')) ? 'x86' : 'x86_64';
  const names = list.map((e) => basename(e.selftest.path, '.c'));
  for (const e of list) {
    const src = join(tmp, basename(e.selftest.path));
    writeFileSync(src, e.selftest.text);
    copyFileSync(src, join(ksft, arch, basename(e.selftest.path)));
  }
  let bad = 0;
  try {
    const r = run('make', ['-C', ksft, '-j2', `TEST_GEN_PROGS_${arch}=${names.map((n) => `${arch}/${n}`).join(' ')}`]);
    const log = `${r.stdout.toString()}${r.stderr.toString()}`;
    for (const n of names) {
      const bin = join(ksft, arch, n);
      if (!existsSync(bin) || new RegExp(`${n}\\.c:\\d+:\\d+: (warning|error)`).test(log)) {
        bad++;
        console.log(`FAIL ${arch}/${n}.c in ${tree}`);
        continue;
      }
      const x = existsSync('/dev/kvm') ? null : run(bin, []);
      if (x !== null && x.status !== 4) {
        bad++;
        console.log(`FAIL ${arch}/${n}: without /dev/kvm it exits ${x.status}, not 4 (KSFT_SKIP)`);
        continue;
      }
      console.log(
        `ok   ${arch}/${n}.c builds in ${tree}${x !== null ? ' (exits 4, KSFT_SKIP, without /dev/kvm)' : ''}`,
      );
    }
    if (bad > 0)
      console.log(
        log
          .split('\n')
          .filter((l) => /error|warning/.test(l))
          .slice(0, 40)
          .join('\n'),
      );
  } finally {
    for (const n of names)
      for (const ext of ['.c', '', '.o', '.d']) rmSync(join(ksft, arch, `${n}${ext}`), { force: true });
  }
  return bad;
}

function check(kernel: string | undefined, all: boolean): number {
  const tmp = mkdtempSync(join(tmpdir(), 'vpmu-reproducers-'));
  try {
    const filed = filedReproducers();
    for (const e of filed)
      if (!existsSync(e.repro.path) || readFileSync(e.repro.path, 'utf8') !== e.repro.text)
        console.log(`note ${e.repro.path} is not current: run npm run reproducers`);
    const list = [...filed, ...(all || kernel !== undefined ? catalogueReproducers() : []), ...sample(tmp)];
    let bad = compileRepros(list, tmp);
    if (kernel !== undefined) bad += buildSelftests(list, kernel, tmp);
    console.log(bad === 0 ? `reproducers: all ${list.length} built` : `reproducers: ${bad} failed`);
    return bad === 0 ? 0 : 1;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function main(argv: readonly string[]): number {
  let status = 0;
  const cli = new Command('reproducers').exitOverride().showHelpAfterError('(run with --help for usage)');
  cli
    .command('emit')
    .description('write the reproducers of the filed findings and the catalogue')
    .action(() => {
      status = emit();
    });
  cli
    .command('check')
    .description('compile the reproducers (and, with --kernel, build the selftests in a kernel tree)')
    .option('--kernel <tree>', 'a kernel source tree (after make headers) to build the selftests in (implies --all)')
    .option('--all', "the catalogue rows' reproducers too")
    .action((o: { kernel?: string; all?: boolean }) => {
      status = check(o.kernel, o.all === true);
    });
  try {
    cli.parse([...argv], { from: 'user' });
    return status;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    throw e;
  }
}

process.exitCode = main(process.argv.slice(2));
