/**
 * `npm run bench`: throughput on one core, of the code as npm start runs it (dist/bench.js, built with the CLI). The reference model's work units/s and MSR accesses/s
 * against the targets (issue #2: 2 M units/s, 1 M MSR accesses/s); the full world on pre-generated
 * programs (run only); and each property end to end as fc.check runs it, split into generation and
 * execution, against fast-check's trivial-model ceiling (bench/end_to_end.ts). `--json` for machines.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import fc from 'fast-check';
import { Cpu } from '../model/hw/cpu.js';
import {
  EVTSEL,
  MSR_P6_EVNTSEL0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PERFCTR0,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_IA32_PMC0,
} from '../model/hw/msr/counters.js';
import { BUILTIN_PROFILES } from '../model/hw/profiles.js';
import type { WorkUnit } from '../model/hw/work.js';
import { encode } from '../scenarios/values.js';
import { unitArb } from '../scenarios/work.js';
import { EmulatedVcpu } from '../model/kvm/emulated/vcpu.js';
import { type ConformanceRun, runProgram } from '../properties/conformance.js';
import { EMULATED_EXPECTATIONS } from '../properties/expectations/emulated.js';
import { quietHostCommands } from '../scenarios/arbitraries.js';
import { probeSupportedPmu, supportedGuestArb } from '../scenarios/supported.js';
import type { VcpuFactory } from '../scenarios/world.js';
import type { WorldCommand } from '../scenarios/commands.js';
import { parseStartResults } from '../cli/results.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
} from '../model/hw/msr/global.js';
import { X2APIC_LVTPC } from '../model/hw/msr/apic.js';
import { MSR_ARCH_LBR_CTL } from '../model/hw/msr/lbr_arch.js';
import { MSR_IA32_DEBUGCTLMSR } from '../model/hw/msr/debugctl.js';
import { designChecks } from '../properties/checks.js';
import { designById } from '../designs/registry.js';
import { type EndToEnd, checkProperty, endToEnd, trivialModel } from './end_to_end.js';
import {
  levelSummary,
  measureTopdown,
  TOPDOWN_CASES,
  TOPDOWN_DESIGNS,
  TOPDOWN_HOST,
  TOPDOWN_SCENARIOS,
  topdownCases,
} from '../compare/topdown.js';

const positive = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
};

const opts = new Command('bench')
  .description('Throughput of the reference PMU model')
  .option('--json', 'print one JSON object instead of a table')
  .option('--seconds <s>', 'time per figure (the median of 5 runs over it)', positive, 2)
  .option('--property <id...>', 'end to end: only these properties (e.g. conformance/quiet no-leak)')
  .option('--warmup <s>', 'end to end: untimed seconds per property before its figures', positive, 5)
  .addOption(new Option('--one <property>', 'end to end: time this one property and print its JSON').hideHelp())
  .parse()
  .opts<{ json?: boolean; seconds: number; property?: string[]; warmup: number; one?: string }>();

/** Samples per figure: the median of several short runs, since a shared machine dips now and then. */
const SAMPLES = 5;

// End to end, each property is timed in a process of its own (this one, run with --one), so that neither the figures
// above nor another property has trained the JIT on other shapes first.
const e2eChecks = designChecks(designById('emulated'), 'skylake', BUILTIN_PROFILES.skylake!);
const nameOf = (c: (typeof e2eChecks)[number]) => `${c.id}${c.gen !== undefined ? `/${c.gen}` : ''}`;
const TRIVIAL = 'fast-check trivial model';
if (opts.one !== undefined) {
  const c = e2eChecks.find((x) => nameOf(x) === opts.one);
  if (c === undefined && opts.one !== TRIVIAL) {
    console.error(`bench: no end-to-end property ${opts.one} (known: ${e2eChecks.map(nameOf).join(', ')})`);
    process.exit(2);
  }
  const r =
    c === undefined
      ? endToEnd(TRIVIAL, trivialModel, opts.seconds, SAMPLES, opts.warmup, 100)
      : endToEnd(opts.one, checkProperty(c), opts.seconds, SAMPLES, opts.warmup);
  console.log(JSON.stringify(r));
  process.exit(0);
}

/** Times one property end to end in a fresh process (`--one`), with this run's --seconds and --warmup. */
function endToEndApart(name: string): EndToEnd {
  const args = [process.argv[1]!, '--one', name, '--seconds', String(opts.seconds), '--warmup', String(opts.warmup)];
  const r = spawnSync(process.execPath, [...process.execArgv, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`end to end of ${name} failed (exit ${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as EndToEnd;
}

/** Runs `body` repeatedly for about `seconds`, in SAMPLES runs; returns the median operations per second. */
function measure(seconds: number, opsPerCall: number, body: () => void): number {
  // Warm up the JIT for a fixed time, not a few calls: the first row read 0.5 M/s now and then.
  const warm = performance.now();
  do body();
  while (performance.now() - warm < Math.min(500, seconds * 500));
  const rates: number[] = [];
  for (let k = 0; k < SAMPLES; k++) {
    let calls = 0;
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < (seconds * 1000) / SAMPLES) {
      body();
      calls++;
      t = performance.now();
    }
    rates.push((calls * opsPerCall) / ((t - t0) / 1000));
  }
  return rates.sort((x, y) => x - y)[SAMPLES >> 1]!;
}

/** A CPU counting like `perf stat` plus `perf record -b`: every GP and fixed counter, LBRs on. */
function busyCpu(name: string): Cpu {
  const cpu = new Cpu(BUILTIN_PROFILES[name]!);
  const p = cpu.profile;
  const events = [0xc0n, 0x3cn, 0xc4n, 0xc5n, 0x2en | (0x4fn << 8n), 0x3cn | (1n << 8n), 0xa4n | (1n << 8n), 0x73n];
  for (let i = 0; i < p.nGP; i++)
    cpu.wrmsr(
      MSR_P6_EVNTSEL0 + i,
      encode(EVTSEL, {
        event: events[i]! & 0xffn,
        umask: events[i]! >> 8n,
        usr: 1n,
        os: 1n,
        int: 1n,
        en: 1n,
      }),
    );
  cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0xbbbbn & ((1n << BigInt(4 * p.nFixedContig)) - 1n));
  cpu.wrmsr(
    MSR_CORE_PERF_GLOBAL_CTRL,
    ((1n << BigInt(p.nGP)) - 1n) | (BigInt(p.fixedSet) << 32n) | (p.perfMetrics ? 1n << 48n : 0n),
  );
  cpu.wrmsr(X2APIC_LVTPC, 0x400n);
  if (p.archLbr) cpu.wrmsr(MSR_ARCH_LBR_CTL, 0x7f0007n);
  else cpu.wrmsr(MSR_IA32_DEBUGCTLMSR, 1n);
  return cpu;
}

const units: WorkUnit[] = fc.sample(unitArb, { numRuns: 4096, seed: 42 });
const rows: { what: string; profile: string; perSecond: number; target: number }[] = [];
for (const name of Object.keys(BUILTIN_PROFILES)) {
  const cpu = busyCpu(name);
  rows.push({
    what: 'work units',
    profile: name,
    perSecond: measure(opts.seconds, units.length, () => {
      for (const u of units) if (cpu.step(u) !== null) cpu.wrmsr(X2APIC_LVTPC, 0x400n);
    }),
    target: 2e6,
  });
  const addrs = [
    MSR_P6_EVNTSEL0,
    MSR_IA32_PERFCTR0,
    MSR_CORE_PERF_GLOBAL_CTRL,
    MSR_CORE_PERF_GLOBAL_STATUS,
    MSR_CORE_PERF_GLOBAL_OVF_CTRL,
    MSR_CORE_PERF_FIXED_CTR_CTRL,
    MSR_CORE_PERF_FIXED_CTR0,
    MSR_IA32_DEBUGCTLMSR,
    MSR_IA32_PMC0,
    MSR_P6_EVNTSEL0 + 1,
  ];
  const values = [0x5300c0n, 0xffff_fff0n, 0xfn, 0n, 1n, 0xbbbn, 0x1000n, 0x1801n, 5n, 0x53003cn];
  rows.push({
    what: 'MSR accesses',
    profile: name,
    perSecond: measure(opts.seconds, addrs.length * 2, () => {
      for (let i = 0; i < addrs.length; i++) {
        cpu.wrmsr(addrs[i]!, values[i]!);
        cpu.rdmsr(addrs[i]!);
      }
    }),
    target: 1e6,
  });
}

// The full world: oracle + KVM + host, running generated conformance programs.
{
  const host = BUILTIN_PROFILES.skylake!;
  const design: VcpuFactory = (h, o) => new EmulatedVcpu(h, o);
  const guests = supportedGuestArb(host, probeSupportedPmu(host, design));
  const programs = fc.sample(fc.tuple(guests, fc.commands(quietHostCommands(), { size: '+1' })), {
    numRuns: 200,
    seed: 7,
  });
  // Count the commands that ran: a program that ends at a declared divergence skips the rest.
  let ran = 0;
  const cmds = programs.map(([, c]) =>
    [...c].map((x): WorldCommand => ({
      check: (m) => x.check(m),
      run: (m, w) => (ran++, x.run(m, w)),
      toString: () => String(x),
    })),
  );
  const run: ConformanceRun = { host, design, expectations: EMULATED_EXPECTATIONS };
  // A fresh guest config per run, as generation gives: the oracle's profile is built per config object.
  const once = () => programs.forEach(([g], i) => runProgram(run, { ...g }, cmds[i]!));
  once();
  const ranPerPass = ran;
  const perSecond = measure(opts.seconds, programs.length, once);
  rows.push({ what: 'programs', profile: 'skylake', perSecond, target: 0 });
  rows.push({
    what: 'guest commands',
    profile: 'skylake',
    perSecond: (perSecond * ranPerPass) / programs.length,
    target: 1e5,
  });
}

// End to end: each property of the emulated design on Skylake as fc.check runs it, then the ceiling.
const E2E_TARGET = 150e3;
const e2e: EndToEnd[] = e2eChecks
  .filter((c) => opts.property === undefined || opts.property.includes(nameOf(c)) || opts.property.includes(c.id))
  .map((c) => endToEndApart(nameOf(c)));
const trivial = endToEndApart(TRIVIAL);
const runOnly = rows.find((r) => r.what === 'guest commands')!.perSecond;

// The topdown proposals' accuracy (compare/topdown.ts): worst and mean |error| in 1/255 per level, one run.
const topdownCasesRun = topdownCases(1, TOPDOWN_CASES);
const topdown = TOPDOWN_DESIGNS.flatMap((d) => {
  const rs = measureTopdown(designById(d), BUILTIN_PROFILES[TOPDOWN_HOST]!, topdownCasesRun);
  return TOPDOWN_SCENARIOS.flatMap((scenario) =>
    ([1, 2] as const).map((level) => ({ design: d, scenario, level, ...levelSummary(rs, d, scenario, level) })),
  );
});

// What a worker costs, as npm start reports it: the emulated design's checks on Skylake at the default budget, one
// worker, in a process of their own (this one holds every figure above).
const PEAK_RSS_TARGET_MB = 400;
const out = mkdtempSync(join(tmpdir(), 'vpmu-bench-'));
const startArgs = [
  'start',
  '--workers',
  '1',
  '--design',
  'emulated',
  '--profile',
  'skylake',
  '--seed',
  '1',
  '--out',
  out,
  '--json',
];
// With this process's V8 flags (package.json gives every entry the same GC flag), as `npm start` runs.
const started = spawnSync(process.execPath, [...process.execArgv, 'scripts/run.mjs', ...startArgs], {
  cwd: join(import.meta.dirname, '..'),
  encoding: 'utf8',
  maxBuffer: 64 * 1024 * 1024,
});
rmSync(out, { recursive: true, force: true });
const cost = started.status === 0 ? parseStartResults(JSON.parse(started.stdout)).resources : null;
if (cost === null) throw new Error(`npm start --json gave no resources (exit ${started.status}): ${started.stderr}`);
const memory = { peakRssMb: cost.peakRssMb, workerMb: cost.perWorkerMb, targetMb: PEAK_RSS_TARGET_MB };

if (opts.json) {
  console.log(
    JSON.stringify(
      {
        node: process.version,
        results: rows,
        endToEnd: {
          design: 'emulated',
          host: 'skylake',
          target: { conformanceCommandsPerSecond: E2E_TARGET, generationShareBelow: 1 / 3 },
          properties: e2e.map((r) => ({ ...r, ofTrivial: r.commandsPerSecond / trivial.commandsPerSecond })),
          trivial,
        },
        topdown,
        memory,
      },
      null,
      2,
    ),
  );
} else {
  const fmt = (n: number) =>
    n >= 1e6 ? `${(n / 1e6).toFixed(2)} M/s` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k/s` : `${n.toFixed(0)}/s`;
  console.log(`reference model throughput, one core, node ${process.version} (median of ${SAMPLES} runs per figure)`);
  for (const r of rows)
    console.log(
      `${r.what.padEnd(15)} ${r.profile.padEnd(15)} ${fmt(r.perSecond).padStart(10)}${r.target > 0 ? `  target ${fmt(r.target)}  ${r.perSecond >= r.target ? 'met' : 'MISSED'}` : ''}`,
    );
  console.log(
    `\nend to end (fc.check: generation + execution), emulated on skylake, one core, each property in a process of its own after ${opts.warmup} s of warm-up; generation = time outside the predicate`,
  );
  console.log(
    `${'property'.padEnd(30)} ${'programs'.padStart(10)} ${'commands'.padStart(10)} ${'generation'.padStart(10)} ${'of trivial'.padStart(10)}`,
  );
  const line = (r: EndToEnd) =>
    `${r.property.padEnd(30)} ${fmt(r.programsPerSecond).padStart(10)} ${fmt(r.commandsPerSecond).padStart(10)} ${`${Math.round(r.generationShare * 100)} %`.padStart(10)} ${`${((r.commandsPerSecond / trivial.commandsPerSecond) * 100).toFixed(1)} %`.padStart(10)}`;
  for (const r of e2e) {
    const conformance = r.property.startsWith('conformance/');
    console.log(
      `${line(r)}${conformance ? `  target ${fmt(E2E_TARGET)} ${r.commandsPerSecond >= E2E_TARGET && r.generationShare < 1 / 3 ? 'met' : 'MISSED'}` : ''}`,
    );
    if (r.property === 'conformance/quiet')
      console.log(`${'  run only (pre-generated)'.padEnd(30)} ${''.padStart(10)} ${fmt(runOnly).padStart(10)}`);
  }
  console.log(line(trivial));
  console.log(
    `\ntopdown accuracy on ${TOPDOWN_HOST}, ${TOPDOWN_CASES} slot breakdowns (seed 1): guest PERF_METRICS − bare metal, worst / mean |error| in 1/255`,
  );
  for (const t of topdown)
    console.log(
      `${`${t.design}, ${t.scenario}`.padEnd(30)} L${t.level}  worst ${String(t.worst).padStart(3)}  mean ${t.mean.toFixed(2).padStart(6)}  bias ${t.bias >= 0 ? '+' : ''}${t.bias.toFixed(2)}`,
    );
  console.log(
    `\nmemory (npm start, emulated on skylake, one worker): peak RSS ${memory.peakRssMb} MB, about ${memory.workerMb} MB for the worker  target under ${PEAK_RSS_TARGET_MB} MB ${memory.workerMb < PEAK_RSS_TARGET_MB ? 'met' : 'MISSED'}`,
  );
}
