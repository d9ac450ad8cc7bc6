import type { Profile } from '../../model/hw/profile.js';
import type { Access } from '../../model/hw/access.js';
import type { Adoption, GuestConfig, MsrAttempt, WorldFacts } from '../../scenarios/world.js';
import type { Observation, VmmOp } from '../../scenarios/observation.js';
import type { OracleCpu } from '../../scenarios/oracle_filter.js';
import type { WorldCommand } from '../../scenarios/commands.js';

/** What a known divergence is judged against. */
export interface DivergenceContext {
  readonly host: Profile;
  readonly guest: GuestConfig;
  /** Every observation of the program so far, the divergent one last. */
  readonly history: readonly Observation[];
  /** What the world knows as the divergent observation is made (bare metal's counters, where vCPUs started). */
  readonly facts?: WorldFacts;
}

/**
 * A divergence of a design from bare metal that upstream has on purpose or by known limitation.
 * When the first divergence of a program matches one, the program ends as a known divergence.
 */
export interface KnownDivergence {
  readonly id: string;
  readonly title: string;
  /** Where in the kernel the behaviour comes from. */
  readonly kernelRef: string;
  readonly matches: (o: Observation, ctx: DivergenceContext) => boolean;
  /**
   * The weaker contract that still holds after this divergence, checked on every later
   * observation of the program: null where it holds, else what is wrong. Without one, the
   * program simply ends at the known divergence.
   */
  readonly contract?: (o: Observation, ctx: DivergenceContext) => string | null;
  /**
   * Where bare metal can take this divergence on for one guest MSR access (decision W6): the
   * result the oracle takes instead of its #GP, or null where this divergence is not the cause.
   * Such a program does not end: it goes on and is compared exactly.
   */
  readonly adopt?: (a: MsrAttempt & { readonly oracle: Access }, host: Profile) => Access | null;
  /** Likewise where the design #GPs: true if this divergence is why, and bare metal faults too (W6). */
  readonly adoptFault?: (a: MsrAttempt, host: Profile) => boolean;
  /**
   * For a write the design accepted: the value the mechanism leaves (bits dropped, a field masked), which bare metal is
   * written instead, or null where this divergence does not narrow it (W6).
   */
  readonly adoptValue?: (a: MsrAttempt, host: Profile) => bigint | null;
  /**
   * For a read both sides answered with different values: true where the declared mechanism alone explains the
   * difference, and bare metal's read takes the design's value (W6). `history`: the program's observations so far.
   */
  readonly adoptRead?: (a: MsrAttempt & { readonly oracle: Access }, history: readonly Observation[]) => boolean;
  /** At a VMM step: bare metal takes on what the mechanism does there; true if that changed its state (W6). */
  readonly adoptStep?: (op: VmmOp, oracle: OracleCpu, guest: GuestConfig, host: Profile) => boolean;
  /** The report under reports/filed this divergence was filed as: its reproducers show it, so they never adopt it. */
  readonly filed?: string;
  /** Bare metal of this guest ignores FREEZE_LBRS_ON_PMI, as the design does for its PMU version (W6). */
  readonly noLbrFreeze?: (guest: GuestConfig, host: Profile) => boolean;
  /** Bare metal of this guest overflows a counter when the design's perf event for it does (perf's period floor, W6). */
  readonly periodFloor?: (guest: GuestConfig, host: Profile) => boolean;
  /**
   * A VMM ioctl's result (an observation of kind 'vmm') may match too. Without it the VMM checks judge every ioctl
   * exactly: only a declaration that names the ioctl's kernel path opts in.
   */
  readonly vmm?: boolean;
}

/** The declaration `o` meets, if any: an ioctl's result only meets one that opts in (vmm). */
export function declaredFor(
  ks: readonly KnownDivergence[],
  o: Observation,
  ctx: DivergenceContext,
): KnownDivergence | undefined {
  return ks.find((k) => (o.kind !== 'vmm' || k.vmm === true) && k.matches(o, ctx));
}

/** The World's adoption hooks for a design's declared divergences on a host, if any adopts (made once per pair). */
export function adoptionOf(ks: readonly KnownDivergence[], host: Profile): Adoption | undefined {
  let byHost = adoptions.get(ks);
  if (byHost === undefined) adoptions.set(ks, (byHost = new Map<Profile, Adoption | undefined>()));
  if (!byHost.has(host)) byHost.set(host, makeAdoption(ks, host));
  return byHost.get(host);
}

/** Hooks of a pure function of the list and the host, built for every program's world before. */
const adoptions = new WeakMap<readonly KnownDivergence[], Map<Profile, Adoption | undefined>>();

function makeAdoption(ks: readonly KnownDivergence[], host: Profile): Adoption | undefined {
  const results = ks.filter((k) => k.adopt !== undefined);
  const faults = ks.filter((k) => k.adoptFault !== undefined);
  const values = ks.filter((k) => k.adoptValue !== undefined);
  const steps = ks.filter((k) => k.adoptStep !== undefined);
  const freezes = ks.filter((k) => k.noLbrFreeze !== undefined);
  const floors = ks.filter((k) => k.periodFloor !== undefined);
  const reads = ks.filter((k) => k.adoptRead !== undefined);
  if (
    results.length + faults.length + values.length + steps.length + freezes.length + floors.length + reads.length ===
    0
  )
    return undefined;
  return {
    result: (a) => {
      for (const k of results) {
        const result = k.adopt!(a, host);
        if (result !== null) return { id: k.id, result };
      }
      return null;
    },
    fault: (a) => faults.find((k) => k.adoptFault!(a, host))?.id ?? null,
    value: (a) => {
      for (const k of values) {
        const value = k.adoptValue!(a, host);
        if (value !== null) return { id: k.id, value };
      }
      return null;
    },
    step: (op, oracle, guest) => steps.filter((k) => k.adoptStep!(op, oracle, guest, host)).map((k) => k.id),
    noLbrFreeze: (guest) => freezes.find((k) => k.noLbrFreeze!(guest, host))?.id ?? null,
    periodFloor: (guest) => floors.find((k) => k.periodFloor!(guest, host))?.id ?? null,
    read: (a, history) => reads.find((k) => k.adoptRead!(a, history))?.id ?? null,
  };
}

/** An Arch LBR record as host perf's state compares it: FROM, TO, and INFO without its elapsed-cycles timer. */
export interface LbrRecord {
  readonly from: bigint;
  readonly to: bigint;
  readonly info: bigint;
}

/** What differs in host perf's LBR state (Arch or legacy) on a pCPU with the guest running and on the same host without it. */
export interface HostLbrDifference {
  readonly cpu: number;
  readonly field: 'LBR_CTL' | 'DEBUGCTL' | 'LBR_SELECT' | 'DEPTH' | 'records';
  /** The field as shown with the guest and without it (hex, or the records' FROM->TO, newest first). */
  readonly withGuest: string;
  readonly hostOnly: string;
  /** The command after which the difference shows. */
  readonly after: WorldCommand;
  /** What the guest's accesses met with the guest running, up to `after` (the World's observations). */
  readonly guestHistory: readonly Observation[];
  /**
   * How many of the host's newest records are gone with the guest while the rest of the host's records follow in order
   * (the guest's own set aside); null when the host's records differ otherwise.
   */
  readonly hostRecordsPopped: number | null;
}

/**
 * A design's known disturbance of host perf's LBRs (property 2, guest to host), one mechanism: when every field of a
 * program's first difference matches one, the program ends as known.
 */
export interface KnownDisturbance {
  readonly id: string;
  readonly title: string;
  /** Where in the kernel (or the series) the behaviour comes from. */
  readonly kernelRef: string;
  readonly matches: (d: HostLbrDifference) => boolean;
}
