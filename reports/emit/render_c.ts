/**
 * Renders an emission as C: the generated tables (the guest program with one comment per
 * instruction, the checks with why each is exact or a bound, the host's steps) under a header
 * that says what the program is, what the model predicts, and that nobody has run it on hardware
 * yet; then one of the two harnesses.
 */

import {
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
} from '../../model/hw/msr/counters.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../../model/hw/msr/capabilities.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../model/hw/msr/debugctl.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_INUSE,
  MSR_CORE_PERF_GLOBAL_STATUS,
} from '../../model/hw/msr/global.js';
import { MSR_ARCH_LBR_CTL, MSR_ARCH_LBR_DEPTH } from '../../model/hw/msr/lbr_arch.js';
import {
  MSR_LBR_INFO_0,
  MSR_LBR_NHM_FROM,
  MSR_LBR_NHM_TO,
  MSR_LBR_SELECT,
  MSR_LBR_TOS,
} from '../../model/hw/msr/lbr_legacy.js';
import { MSR_LSTAR, MSR_STAR, MSR_SYSCALL_MASK } from '../../model/hw/msr/system.js';
import { MSR_PERF_METRICS } from '../../model/hw/msr/topdown.js';
import { HostOpen, HostWork } from '../../scenarios/commands.js';
import { describeGuest } from '../render.js';
import { COMMON_C } from './c_harness.js';
import { REPRO_MAIN_C, REPRO_PRELUDE_C } from './c_repro.js';
import { SELFTEST_INCLUDES, SELFTEST_MAIN_C, SELFTEST_PRELUDE_C } from './c_selftest.js';
import type { Expect, Failure, GuestCheck, PmiCheck } from './checks.js';
import type { Emission } from './emit.js';
import {
  GDT_ENTRIES,
  GUEST_BASE,
  GUEST_RFLAGS,
  GUEST_SIZE,
  gdtEntries,
  LAYOUT,
  type Placed,
  PMI_LOG_MAX,
  PORT,
  SEL,
  STAR_VALUE,
  STUB,
} from './guest.js';
import { type HostSeen, stubs } from './simulate.js';
import { type CommandEmitter, guestC, type HostContext } from './table.js';

const hex = (v: number | bigint) => `0x${v.toString(16)}`;
const cstr = (s: string) => JSON.stringify(s);

const MODE_C: Readonly<Record<Emission['mode'], string>> = {
  'bare-metal': 'MODE_BARE_METAL',
  differential: 'MODE_DIFFERENTIAL',
  'host-counts': 'MODE_HOST_COUNTS',
  'host-samples': 'MODE_HOST_SAMPLES',
  'vmm-abi': 'MODE_VMM_ABI',
};

/** The MSR names the C uses, by the kernel's names, from the model's constants. */
const MSR_DEFINES: readonly [string, number][] = [
  ['MSR_IA32_PERFCTR0', MSR_IA32_PERFCTR0],
  ['MSR_IA32_PMC0', MSR_IA32_PMC0],
  ['MSR_P6_EVNTSEL0', MSR_P6_EVNTSEL0],
  ['MSR_CORE_PERF_FIXED_CTR0', MSR_CORE_PERF_FIXED_CTR0],
  ['MSR_CORE_PERF_FIXED_CTR_CTRL', MSR_CORE_PERF_FIXED_CTR_CTRL],
  ['MSR_CORE_PERF_GLOBAL_STATUS', MSR_CORE_PERF_GLOBAL_STATUS],
  ['MSR_CORE_PERF_GLOBAL_CTRL', MSR_CORE_PERF_GLOBAL_CTRL],
  ['MSR_CORE_PERF_GLOBAL_INUSE', MSR_CORE_PERF_GLOBAL_INUSE],
  ['MSR_PERF_METRICS', MSR_PERF_METRICS],
  ['MSR_IA32_PERF_CAPABILITIES', MSR_IA32_PERF_CAPABILITIES],
  ['MSR_IA32_DEBUGCTLMSR', MSR_IA32_DEBUGCTLMSR],
  ['MSR_LBR_SELECT', MSR_LBR_SELECT],
  ['MSR_LBR_TOS', MSR_LBR_TOS],
  ['MSR_LBR_NHM_FROM', MSR_LBR_NHM_FROM],
  ['MSR_LBR_NHM_TO', MSR_LBR_NHM_TO],
  ['MSR_LBR_INFO_0', MSR_LBR_INFO_0],
  ['MSR_ARCH_LBR_CTL', MSR_ARCH_LBR_CTL],
  ['MSR_ARCH_LBR_DEPTH', MSR_ARCH_LBR_DEPTH],
  ['MSR_STAR', MSR_STAR],
  ['MSR_LSTAR', MSR_LSTAR],
  ['MSR_SYSCALL_MASK', MSR_SYSCALL_MASK],
];

const PROPERTY_WORDS: Readonly<Record<string, string>> = {
  conformance: 'property 1, conformance: every guest observation equals what bare metal of the guest CPUID shows',
  'lbr-freeze': 'property 3: after a PMI with Freeze_LBRs_On_PMI the guest sees the LBRs bare metal shows',
  'vmm-conformance': 'property 1 after a VMM prefix (CPUID, PERF_CAPABILITIES, event filter, host MSR writes)',
  'no-leak': 'property 2: host-private values never reach the guest (two runs that differ only in them)',
  invisible: 'property 4: migration and save/restore are invisible to the guest (the program with and without it)',
  'host-undisturbed': "property 2: a host user's events count as on a host without the guest",
  'host-samples': "property 2: an exclude_guest host event's samples are all the host's",
  'vmm-abi':
    'the VMM ABI: KVM_GET_MSR_INDEX_LIST, the MSR round trip, PERF_CAPABILITIES without PDCM, KVM_SET_CPUID2 after KVM_RUN',
};

/** One line per instruction (runs of one-byte NOPs folded), as `struct code_run` rows. */
function codeRows(placed: readonly Placed[], indent = '\t'): string[] {
  const rows: string[] = [];
  for (let i = 0; i < placed.length;) {
    const p = placed[i]!;
    let n = 1;
    if (p.insn.bytes.length === 1)
      while (
        placed[i + n] !== undefined &&
        placed[i + n]!.insn.asm === p.insn.asm &&
        placed[i + n]!.addr === p.addr + n
      )
        n++;
    const bytes = p.insn.bytes.map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(', ');
    const off = hex(p.addr - GUEST_BASE);
    rows.push(
      `${indent}{ ${off}, ${n}, ${p.insn.bytes.length}, { ${bytes} } },`.padEnd(56) +
        `/* ${hex(p.addr)}: ${p.insn.asm}${n > 1 ? ` (x ${n})` : ''} */`,
    );
    i += n;
  }
  return rows;
}

function expectFields(e: Expect): string {
  switch (e.mode) {
    case 'exact':
      return `.mode = M_EXACT, .a = ${hex(e.value)}ull`;
    case 'mask':
      return `.mode = M_MASK, .a = ${hex(e.value)}ull, .b = ${hex(e.mask)}ull`;
    case 'range':
      return `.mode = M_RANGE, .a = ${hex(e.lo)}ull, .b = ${hex(e.hi)}ull`;
    case 'atLeast':
      return `.mode = M_AT_LEAST, .a = ${hex(e.lo)}ull`;
    case 'atMost':
      return `.mode = M_AT_MOST, .b = ${hex(e.hi)}ull`;
    case 'none':
      return '.mode = M_NONE';
  }
}

function checkRow(c: GuestCheck | PmiCheck): string {
  if (c.kind === 'pmi')
    return `\t{ .what = ${cstr(c.label)}, .kind = C_PMI, .vec = ${c.vector}, .val_off = ${c.index}, .a = ${hex(c.lo)}, .b = ${hex(c.hi)}, .due = ${c.due} },`;
  const val = c.valAddr === null ? '' : `, .val_at = ${hex(c.valAddr)}`;
  return `\t/* ${c.why} */\n\t{ .what = ${cstr(c.label)}, .kind = C_GUEST, .vec = ${c.vector ?? -1}, .vec_at = ${hex(c.vecAddr)}${val}, ${expectFields(c.value)}, .due = ${c.due} },`;
}

/** What a failure reads like, for the header. */
export function failureText(f: Failure): string {
  switch (f.kind) {
    case 'guest':
      return `${f.check.label}: ${f.got}`;
    case 'pmi':
      return `${f.check.label}: ${f.got}`;
    case 'pmiCount':
      return `the PMI count: ${f.got}, bare metal ${f.expected}`;
    case 'vmm':
      return `[${f.host.index + 1}] ${f.host.command.toString()}: ${f.got}, KVM's ABI ${f.expected}`;
    case 'run':
      return `${f.what}: ${f.got}`;
  }
}

function hostStatement(e: Emission, h: HostSeen): string {
  const em: CommandEmitter = e.plan.emitters[h.index]!;
  const label = `[${h.index + 1}] ${em.label(h.command)}`;
  const ctx: HostContext = {
    observations: h.observations,
    hostEvent: h.hostEvent,
    opened: h.opened,
    guest: h.guest,
  };
  const s = em.host!(h.command, ctx);
  // Every helper that checks takes the observation's name first.
  return `\t/* ${label} */\n\t${s.replace(/^(vmm_\w+)\(/, `$1(${cstr(label)}, `)}`;
}

function needsC(e: Emission): string {
  const lines: string[] = [];
  const models = e.traces[0]!.hosts.filter((h) => h.command.constructor.name === 'VmmSetCpuid');
  for (const h of models) lines.push(`\tcheck_model_fits(&(struct guest_model)${guestC(h.guest)});`);
  for (const n of e.needs)
    switch (n.kind) {
      case 'cpus':
        break; // pick_pcpus() checks NR_PCPUS
      case 'perf':
        break; // perf_event_open's refusal skips at the open
      case 'hostPmu':
        lines.push('\tcheck_host_pmu();');
        break;
      case 'xsaves':
        lines.push(
          '\tif (!cpuid_entry(supported, 0xd, 1) || !(cpuid_entry(supported, 0xd, 1)->eax & (1u << 3)) ||\n\t    !(cpuid_entry(supported, 1, 0)->ecx & (1u << 26)))\n\t\tskip("KVM offers no XSAVES");',
        );
        break;
      case 'filter':
        lines.push(
          '\tif (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_PMU_EVENT_FILTER) <= 0)\n\t\tskip("no KVM_CAP_PMU_EVENT_FILTER");',
        );
        break;
      case 'maskedFilter':
        lines.push(
          '\tif (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_PMU_EVENT_MASKED_EVENTS) <= 0)\n\t\tskip("no KVM_CAP_PMU_EVENT_MASKED_EVENTS");',
        );
        break;
      case 'timer':
        break;
      case 'mediatedPmu':
        lines.push(
          '\t{\n\t\tchar v[2] = "N";\n\t\tint fd = open("/sys/module/kvm/parameters/enable_mediated_pmu", O_RDONLY);\n\n\t\tif (fd >= 0) {\n\t\t\tif (read(fd, v, 1) != 1)\n\t\t\t\tv[0] = \'N\';\n\t\t\tclose(fd);\n\t\t}\n\t\tif (v[0] != \'Y\')\n\t\t\tskip("a finding of the mediated vPMU: load kvm with enable_mediated_pmu=1");\n\t}',
        );
        break;
    }
  return `static void check_needs(void)\n{\n${lines.join('\n')}${lines.length === 0 ? '\t/* nothing beyond the guest model */' : ''}\n}`;
}

/** The host's statements at one point (the prefix: op -1) of a trace. */
function statementsAt(e: Emission, hosts: readonly HostSeen[], op: number): string[] {
  return hosts.filter((h) => h.op === op).map((h) => hostStatement(e, h));
}

/** Statements for both runs of a differential reproducer (each run's where they differ). */
function perRun(e: Emission, op: number): string[] {
  const b = statementsAt(e, e.traces[0]!.hosts, op);
  if (e.baselineTrace === undefined) return b;
  const a = statementsAt(e, e.baselineTrace.hosts, op);
  if (a.join() === b.join()) return b;
  const ind = (xs: string[]) => xs.map((x) => x.replace(/^\t/gm, '\t\t'));
  return [`\tif (run_index == 0) {\n${ind(a).join('\n')}\n\t} else {\n${ind(b).join('\n')}\n\t}`];
}

function stepsC(e: Emission): { prefix: string; steps: string; hostOnly: string } {
  const prefix = perRun(e, -1);
  const cases: string[] = [];
  for (const op of e.plan.ops)
    if (op.kind === 'sync') {
      const body = perRun(e, e.plan.ops.indexOf(op));
      cases.push(`\tcase ${op.sync}:\n${body.map((b) => b.replace(/^\t/gm, '\t\t')).join('\n')}\n\t\tbreak;`);
    }
  const only = e.traces[0]!.hosts.filter((h) => h.command instanceof HostOpen || h.command instanceof HostWork).map(
    (h) => hostStatement(e, h),
  );
  return {
    prefix: `/* The VMM's commands before the first KVM_RUN. */\nstatic void vmm_prefix(void)\n{\n${prefix.join('\n')}${prefix.length === 0 ? '\t/* none */' : ''}\n}`,
    steps: `/* What the host does at each sync point, after the checks due there. */\nstatic void host_step(unsigned sync)\n{\n\tswitch (sync) {\n${cases.join('\n')}${cases.length > 0 ? '\n' : ''}\tdefault:\n\t\tharness_error("sync point %u has no host step", sync);\n\t}\n}`,
    hostOnly: `/* The host users' commands alone, on a host without the guest. */\nstatic void host_only(void)\n{\n${only.join('\n')}${only.length === 0 ? '\t/* none */' : ''}\n}`,
  };
}

/** The generated part: layout, the guest program, the checks, the host steps. */
function generated(e: Emission): string {
  const f = e.finding;
  const b = e.plan.builder;
  const codeEnd = b.asm.at - GUEST_BASE;
  const st = stubs();
  const fixed = st.placed.filter((p) => p.addr < GUEST_BASE + LAYOUT.stubs + STUB.irqEntries);
  const ops = e.plan.ops.map((op) => {
    const title = op.kind === 'guest' ? `[${op.source! + 1}] ${op.label}` : op.label;
    return `\t/* ${title} */\n${codeRows(op.placed).join('\n')}`;
  });
  const checks = [...e.checks.guest, ...e.checks.pmis].sort((x, y) => x.due - y.due || x.pos - y.pos);
  const far = b.far.entries;
  const h = f.host;
  return `/* ---- the program (generated) ---------------------------------------------------------- */

#define TITLE ${cstr(`${f.id}: ${f.title}`)}
#define AGAINST ${cstr(e.mode === 'differential' ? 'the other run' : e.mode === 'vmm-abi' ? "KVM's ABI" : 'bare metal')}
#define GUEST_BASE ${hex(GUEST_BASE)}ull
#define GUEST_SIZE ${hex(GUEST_SIZE)}
#define OFF_PML4 ${hex(LAYOUT.pml4)}
#define OFF_PDPT ${hex(LAYOUT.pdpt)}
#define OFF_PD ${hex(LAYOUT.pd)}
#define OFF_GDT ${hex(LAYOUT.gdt)}
#define OFF_IDT ${hex(LAYOUT.idt)}
#define OFF_TSS ${hex(LAYOUT.tss)}
#define OFF_FAR_PTRS ${hex(LAYOUT.farPtrs)}
#define OFF_STUBS ${hex(LAYOUT.stubs)}
#define OFF_CODE ${hex(LAYOUT.code)}
#define CODE_END ${hex(codeEnd)}
#define OFF_OBS ${hex(LAYOUT.obs)}
#define OFF_PMI_COUNT ${hex(LAYOUT.pmiCount)}
#define OFF_PMI_VEC ${hex(LAYOUT.pmiVec)}
#define OFF_PMI_RIP ${hex(LAYOUT.pmiRip)}
#define OFF_XSAVE ${hex(LAYOUT.xsave)}
#define OFF_RSP0 ${hex(LAYOUT.rsp0)}
#define OFF_STACK ${hex(LAYOUT.stack)}
#define STUB_LANDING ${hex(STUB.landing)}
#define STUB_GP (OFF_STUBS + ${hex(STUB.gp)})
#define STUB_NMI (OFF_STUBS + ${hex(STUB.nmi)})
#define STUB_IRQ_COMMON (OFF_STUBS + ${hex(STUB.irqCommon)})
#define STUB_IRQ_ENTRIES (OFF_STUBS + ${hex(STUB.irqEntries)})
#define STUB_FATAL (OFF_STUBS + ${hex(STUB.fatal)})
#define SEL_KERNEL_CS ${hex(SEL.kernelCs)}
#define SEL_KERNEL_DS ${hex(SEL.kernelDs)}
#define SEL_TSS ${hex(SEL.tss)}
#define STAR_VALUE ${hex(STAR_VALUE)}ull
#define GUEST_RFLAGS ${hex(GUEST_RFLAGS)}
#define PORT_SYNC ${hex(PORT.sync)}
#define PORT_DONE ${hex(PORT.done)}
#define PORT_FATAL ${hex(PORT.fatal)}
#define VEC_NOT_RUN 0xffull
#define NR_SLOTS ${b.slotCount}
#define NR_SYNCS ${b.syncCount}
#define NR_PCPUS ${f.cpus}
#define NEEDS_XSAVES ${e.needs.some((n) => n.kind === 'xsaves') ? 1 : 0}
#define PMI_LOG_MAX ${PMI_LOG_MAX}
enum { MODE_BARE_METAL, MODE_DIFFERENTIAL, MODE_HOST_COUNTS, MODE_HOST_SAMPLES, MODE_VMM_ABI };
#define MODE ${MODE_C[e.mode]}
/* A differential reproducer's two runs, as its divergence message names them. */
#define CHANGED ${cstr(f.property === 'invisible' ? 'with the VMM action' : "with the host's values changed")}
#define UNCHANGED ${cstr(f.property === 'invisible' ? 'without it' : 'with the original values')}
/* The model's host: the program's host users assume its PMU. */
#define HOST_PROFILE ${cstr(f.hostName)}
#define HOST_FAMILY ${h.family}
#define HOST_MODEL ${hex(h.model)}
#define HOST_GP_COUNTERS ${h.nGP}
#define HOST_FIXED_COUNTERS ${h.nFixedContig}
${MSR_DEFINES.map(([n, a]) => `#ifndef ${n}\n#define ${n} ${hex(a)}\n#endif`).join('\n')}

struct code_run {
	uint32_t off, repeat;
	uint8_t len, bytes[15];
};

struct far_ptr {
	uint64_t offset;
	uint16_t selector;
};

struct guest_model {
	unsigned family, model;
	uint32_t eax, ebx, ecx, edx; /* CPUID.0AH */
	int pdcm, tsx;
	uint64_t perf_capabilities;
};

enum { C_GUEST, C_PMI };
enum { M_NONE, M_EXACT, M_MASK, M_RANGE, M_AT_LEAST, M_AT_MOST };

/*
 * C_GUEST: the exception vector at vec_at (-1: not checked), then the value at val_at (0: none).
 * C_PMI: the val_off-th logged PMI has vector vec and an interrupted RIP in [a, b].
 */
struct check {
	const char *what;
	uint8_t kind, mode;
	int16_t vec;
	uint64_t vec_at, val_at;
	uint32_t val_off;
	uint64_t a, b;
	uint16_t due;
};

/* The guest model: ${describeGuest(f.guest)}. */
static const struct guest_model guest = ${guestC(f.guest)};

static const uint64_t gdt_init[${GDT_ENTRIES}] = {
${gdtEntries()
  .map((g) => `\t${hex(g)}ull,`)
  .join('\n')}
};

/* The handlers: SYSCALL landing, #GP (skip the instruction, R14 = 13), NMI and fixed-vector PMI loggers. */
static const struct code_run stub_code[] = {
${codeRows(fixed).join('\n')}
};

/* Far pointers of FAR branches (offset, selector). */
static const struct far_ptr far_ptrs[] = {
${far.length === 0 ? '\t{ 0, 0 },' : far.map((p) => `\t{ ${hex(p.offset)}, ${hex(p.selector)} },`).join('\n')}
};

/* The program, one op per command; each guest op stores its exception vector (R14) and value. */
static const struct code_run guest_code[] = {
${ops.join('\n')}
};

#define NR_CHECKS ${checks.length}
static const struct check checks[${Math.max(checks.length, 1)}] = {
${checks.map(checkRow).join('\n')}
};

/* PMIs bare metal delivers by each sync point (the end last), and in all. */
static const unsigned pmi_max_by[NR_SYNCS + 1] = { ${e.checks.pmiMaxBy.join(', ')} };
#define PMI_MIN ${e.checks.pmiCount.min}

static void check_needs(void);
static void vmm_prefix(void);
static void host_step(unsigned sync);
static void reproduce(void);
static void vm_open(void);
static void vm_close(void);
static void save_restore(int k);
`;
}

/** What the predictions rest on beyond the guest model. */
function assumptions(e: Emission): string[] {
  const f = e.finding;
  const out: string[] = [];
  const h = f.host;
  if (e.needs.some((n) => n.kind === 'hostPmu'))
    out.push(
      `the host has the model host's PMU per CPU (${h.nGP} GP, ${h.nFixedContig} fixed counters: checked) and no other perf user holds counters on the program's pCPUs (the NMI watchdog takes one: echo 0 > /proc/sys/kernel/nmi_watchdog)`,
    );
  if ((f.guest.perfCapabilities & 0x3fn) !== 0n && f.guest.cpuid.pdcm)
    out.push(
      `the host's LBR format is the guest's (${f.guest.perfCapabilities & 0x3fn}: checked), with the model host's depth (${h.legacyLbr?.depth ?? 'Arch LBR'})`,
    );
  if (f.cpus > 1 && e.plan.emitters.some((x) => ['Migrate', 'SaveRestore', 'HostOpen', 'HostWork'].includes(x.name)))
    out.push(`the program's pCPU k is the k-th CPU this process may run on (${f.cpus} needed: checked)`);
  if (e.traces[0]!.oraclePmis.length > 0)
    out.push('a PMI arrives between the instruction that overflows and the next one that observes (skid)');
  return out;
}

function header(e: Emission, flavor: 'repro' | 'selftest', file: string): string {
  const f = e.finding;
  const lines: string[] = ['// SPDX-License-Identifier: GPL-2.0-only'];
  const w = (s = '') => lines.push(s === '' ? '//' : `// ${s}`);
  w(f.title);
  w();
  w(
    `vpmu-conformance ${flavor === 'repro' ? 'reproducer' : 'KVM selftest'} for ${f.id}${f.reportPath !== undefined ? ` (${f.reportPath})` : ''}.`,
  );
  w(`Property: ${PROPERTY_WORDS[f.property] ?? f.property}.`);
  w(`Design: ${f.design.id} (${f.design.title}); model host ${f.hostName}, ${f.cpus} pCPUs.`);
  w(`Guest: ${describeGuest(f.guest)}.`);
  w(`Generated by \`${f.regenerate}\`; do not edit (regenerate).`);
  w();
  w('STATUS: NOT RUN ON HARDWARE YET. It was generated and compiled where there is no /dev/kvm with');
  w('an Intel PMU; until someone reports back what it prints on an Intel host, its verdict is the');
  w("model's prediction below, nothing more.");
  w();
  if (e.onDesign !== null) {
    w(`The model predicts: on a kernel like the design it ${flavor === 'repro' ? 'exits 1' : 'fails'} at`);
    w(`  ${failureText(e.onDesign)}`);
    w(`and it ${flavor === 'repro' ? 'exits 0' : 'passes'} on a kernel that behaves as bare metal does.`);
    if (e.afterFix !== undefined)
      w(
        e.afterFix.failure === null
          ? `After the fix (the design ${e.afterFix.design}) the model predicts it passes: a regression test for it.`
          : `After the fix (the design ${e.afterFix.design}) the model predicts it still fails, at ${failureText(e.afterFix.failure)}.`,
      );
  } else {
    w('WARNING: the model predicts this program passes on a kernel like the design too: the lowered');
    w("program (the report's plus the instructions the guest really retires) no longer shows the divergence.");
  }
  w();
  w('The program (guest ops run in order; host steps run at the sync point before the next guest op):');
  f.program.forEach((c, i) => {
    const dropped = e.plan.dropped.find((d) => d.index === i);
    const em = e.plan.emitters[i]!;
    w(`  [${i + 1}] ${em.label(c)}${dropped !== undefined ? ` -- LEFT OUT: ${dropped.why}` : ''}`);
  });
  const assumes = assumptions(e);
  if (assumes.length > 0) {
    w();
    w('It assumes (and checks where it can, exiting 77 otherwise):');
    for (const a of assumes) w(`  - ${a}`);
  }
  if (e.checks.declared.length > 0) {
    w();
    w('Declared known divergences the checks step over (properties/expectations/):');
    for (const d of e.checks.declared) w(`  ${d.label}: ${d.id}`);
  }
  w();
  w('Checks are exact where hardware gives exact values (instructions and branches retired, MSR');
  w('read-back, #GP); bounds where it cannot: cycles, LLC and topdown events, mispredictions, PMI skid,');
  w('the side a SYSRET/SYSCALL/IRETQ counts on, whether an event delivery is an LBR record. Each row of');
  w("checks[] says which. The guest counts everything it retires: each op's set-up and stores, the");
  w('handlers, the ring crossings; the predictions include them.');
  w();
  if (flavor === 'repro') {
    w(`Build: gcc -O2 -Wall -o repro ${file}`);
    w('Run:   ./repro   (read/write access to /dev/kvm; host perf users need perf_event_paranoid <= 0 or root)');
    w('Exit:  0 the divergence is absent, 1 it is present (the first divergent observation is printed),');
    w('       2 harness error (the reproducer itself failed: no verdict), 77 the host lacks what the program needs.');
  } else {
    const name = file.replace(/\.c$/, '');
    w('Build in a kernel tree (after `make headers` at its top):');
    w(`  6.12 (x86_64/): cp ${file} tools/testing/selftests/kvm/x86_64/ &&`);
    w(`                  make -C tools/testing/selftests/kvm TEST_GEN_PROGS_x86_64=x86_64/${name}`);
    w(`  6.14 and later (x86/): cp ${file} tools/testing/selftests/kvm/x86/ &&`);
    w(`                  make -C tools/testing/selftests/kvm TEST_GEN_PROGS_x86=x86/${name}`);
    w('  or, from vpmu-conformance: npm run reproducers:check -- --kernel <kernel tree>');
    w('Exit:  0 pass (no divergence), 4 (KSFT_SKIP) the host lacks what the program needs,');
    w('       254 fail: "first divergence at ..." (or "harness error", which is no verdict).');
  }
  return lines.join('\n');
}

const INCLUDES = `#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>
#include <linux/perf_event.h>

/* Newer than some distributions' kernel headers (Debian 12 ships 6.1's). */
#ifndef KVM_CAP_PMU_EVENT_MASKED_EVENTS
#define KVM_CAP_PMU_EVENT_MASKED_EVENTS 226
#endif
#ifndef KVM_CAP_XSAVE2
#define KVM_CAP_XSAVE2 208
#endif`;

function reproduceC(e: Emission): string {
  const body: Record<Emission['mode'], string[]> = {
    'bare-metal': ['run_program();'],
    'host-samples': ['run_program(); /* after_run() checks the samples of each exclude_guest sampling event */'],
    'vmm-abi': ['check_msr_index_list();', 'run_program();'],
    differential: [
      'run_index = 0; /* the run without the change */',
      'run_program();',
      'run_index = 1; /* the run with it */',
      'run_program();',
      'compare_runs();',
    ],
    'host-counts': [
      'run_program(); /* with the guest: after_run() keeps the final counts */',
      'nr_host_events = 0;',
      'host_only();',
      'close_host_events();',
      'compare_host_counts();',
    ],
  };
  return `static void reproduce(void)\n{\n${body[e.mode].map((l) => `\t${l}`).join('\n')}\n}`;
}

/** The standalone reproducer. */
export function renderRepro(e: Emission, file: string): string {
  const { prefix, steps, hostOnly } = stepsC(e);
  return [
    header(e, 'repro', file),
    '',
    INCLUDES,
    '',
    generated(e),
    REPRO_PRELUDE_C,
    COMMON_C,
    needsC(e),
    '',
    prefix,
    '',
    steps,
    ...(e.mode === 'host-counts' ? ['', hostOnly] : []),
    REPRO_MAIN_C,
    reproduceC(e),
    '',
  ].join('\n');
}

/** The KVM selftest. */
export function renderSelftest(e: Emission, file: string): string {
  const { prefix, steps, hostOnly } = stepsC(e);
  return [
    header(e, 'selftest', file),
    '',
    SELFTEST_INCLUDES,
    '',
    generated(e),
    SELFTEST_PRELUDE_C,
    COMMON_C,
    needsC(e),
    '',
    prefix,
    '',
    steps,
    ...(e.mode === 'host-counts' ? ['', hostOnly] : []),
    SELFTEST_MAIN_C,
    reproduceC(e),
    '',
  ].join('\n');
}
