/**
 * Every fact tagged [U] (unverified) in pmu-semantics.md that the model relies on, with the
 * choice made and why. Code cites these by id ("D12"). Someone with hardware can challenge any
 * line; changing a choice means changing the code that cites it and this entry together.
 */

export interface Decision {
  readonly id: string;
  /** The open question, as pmu-semantics.md states it. */
  readonly question: string;
  readonly choice: string;
  readonly why: string;
  /** Where the question is raised. */
  readonly ref: string;
  /**
   * Why no run records this decision (model/hw/relied.ts), where none does: it shapes the model or the comparison
   * rather than deciding an outcome a different choice would change.
   */
  readonly unrecorded?: string;
}

export const DECISIONS: readonly Decision[] = [
  {
    id: 'D1',
    question: 'Do GLOBAL_STATUS/CTRL/OVF_CTRL (0x38E-0x390) exist from version 1 (SDM MSR table) or version 2?',
    choice: 'From version 2, with FIXED_CTR_CTRL.',
    why: 'The SDM chapter text, KVM, kvm-unit-tests and the selftests all gate them on version > 1.',
    ref: 'pmu-semantics.md §1.3, §7 item 24',
  },
  {
    id: 'D2',
    question: 'A FIXED_CTRi write with bits at or above the counter width: #GP or truncate?',
    choice: '#GP.',
    why: 'The SDM says those bits "must be written as zeros", as for A_PMCi, where #GP is verified. KVM masks silently instead, which the suite will report.',
    ref: 'pmu-semantics.md §2.4, §8',
  },
  {
    id: 'D3',
    question: 'Does hardware #GP a full-width (A_PMCi) write at or above the counter width?',
    choice: '#GP.',
    why: 'kvm-unit-tests asserts it, and KVM does the same.',
    ref: 'pmu-semantics.md §2.2',
  },
  {
    id: 'D4',
    question: 'CMASK compares against occurrences per cycle; what is a cycle in a model of work units?',
    choice:
      'A work unit is one sampling interval: with CMASK != 0 a counter adds 1 per unit whose occurrence count passes the threshold.',
    why: "Units are the model's atomic step; splitting them into cycles would invent a distribution the workload does not state.",
    ref: 'pmu-semantics.md §2.3, §4.3',
  },
  {
    id: 'D5',
    question: 'EDGE with CMASK = 0, and EDGE for multi-occurrence events.',
    choice:
      'EDGE counts 1 for each unit whose (thresholded) condition holds when it did not in the previous counted unit; the detector restarts when the EVTSEL is written.',
    why: 'The SDM defines EDGE as deasserted-to-asserted transitions; back-to-back assertions are indistinguishable, so one unit counts at most once.',
    ref: 'pmu-semantics.md §4.3, §8',
  },
  {
    id: 'D6',
    question: 'Do LBR_FRZ and CTR_FRZ (and legacy freezes) need the overflowing counter to have PMI enabled?',
    choice: 'Yes: freezing happens at PMI generation, which needs INT (GP) or the PMI bit (fixed).',
    why: 'The SDM ties the freezes to the PMI ("on PMI"); the LBR_FRZ row names "a PMI-enabled counter overflowed".',
    ref: 'pmu-semantics.md §2.6, §4.4',
  },
  {
    id: 'D7',
    question: 'Does a masked LVTPC latch a pending PMI?',
    choice: 'No: a PMI raised while LVTPC is masked is dropped; unmasking later delivers nothing.',
    why: 'KVM drops it, and the guest PMI handler unmasks only after handling; nothing in the SDM describes latching.',
    ref: 'pmu-semantics.md §4.4, §8',
  },
  {
    id: 'D8',
    question: 'How many PMIs for several overflows in one unit?',
    choice: 'One, at the unit boundary.',
    why: 'The PMI is one LAPIC interrupt per event; GLOBAL_STATUS tells the handler which counters overflowed.',
    ref: 'design.md "Timing"',
  },
  {
    id: 'D9',
    question: 'Does legacy FREEZE_PERFMON_ON_PMI clear GLOBAL_CTRL[48] too?',
    choice:
      'Legacy freeze (v2, v3) clears every bit of GLOBAL_CTRL, bit 48 included. A version-1 PMU has neither freeze bit (D37).',
    why: 'The SDM says it clears the enable bits of GLOBAL_CTRL; EN_PERF_METRICS only exists on v4+ parts, where freezing uses CTR_FRZ.',
    ref: 'pmu-semantics.md §4.4, §8',
  },
  {
    id: 'D10',
    question: 'A second overflow while the status bit is already set.',
    choice: 'The bit stays 1 and another PMI is requested.',
    why: 'Each overflow raises a PMI if enabled; the status bit is sticky.',
    ref: 'pmu-semantics.md §4.3',
  },
  {
    id: 'D11',
    question: 'Exact gating of GLOBAL_STATUS[48] (PERF_METRICS overflow).',
    choice:
      "Set when FIXED_CTR3 overflows while PERF_METRICS is enumerated and GLOBAL_CTRL[48] = 1; its PMI is FIXED_CTR3's PMI.",
    why: 'The metrics overflow follows the SLOTS overflow, and PERF_METRICS only accumulates while enabled.',
    ref: 'pmu-semantics.md §2.11',
  },
  {
    id: 'D12',
    question: 'How PERF_METRICS evolves: gating, rounding, and what a FIXED_CTR3 write alone does.',
    choice:
      'PERF_METRICS accumulates only in units where FIXED_CTR3 counts and GLOBAL_CTRL[48] = 1. Bytes read floor(0xFF * slots_k / total). A PERF_METRICS write sets the fractions, weighted by the current SLOTS value; a FIXED_CTR3 write keeps the fractions and re-weights them by its new value.',
    why: 'Contents are microarchitectural; this keeps the documented laws (L1 bytes sum to 0xFF minus rounding, L2 within L1, "write both to 0 to start a period", Linux\'s save/restore of both) and is deterministic.',
    ref: 'pmu-semantics.md §2.11',
  },
  {
    id: 'D13',
    question: 'PERF_METRICS bits 63:32 on a part without level-2 topdown.',
    choice: 'Ignored on write, read 0; no #GP.',
    why: 'Not documented either way; ignoring avoids a #GP that Linux never provokes.',
    ref: 'pmu-semantics.md §2.11',
  },
  {
    id: 'D14',
    question: 'Which bits STATUS_RESET/STATUS_SET accept, and what they read.',
    choice:
      'Counter bits, 48 with PERF_METRICS, 61 from v3, 58/59 from v4, 62 and 63; 54, 55 and 60 #GP because arch PEBS, PT and SGX are not modelled. Both read 0.',
    why: 'A 1 in a bit with no status meaning #GPs; KVM returns 0 on reads.',
    ref: 'pmu-semantics.md §2.7, §2.8',
  },
  {
    id: 'D15',
    question: 'Can STATUS_SET set CondChgd and the freeze bits, and do they then freeze?',
    choice: 'Any accepted bit can be set; a set CTR_FRZ/LBR_FRZ freezes exactly as if hardware had set it.',
    why: 'STATUS_SET exists so a VMM can virtualize GLOBAL_STATUS; a set freeze bit is the same state.',
    ref: 'pmu-semantics.md §2.8',
  },
  {
    id: 'D16',
    question: 'Does a WRMSR to INUSE #GP on hardware?',
    choice: '#GP.',
    why: 'Read-only MSRs #GP on write; KVM does so.',
    ref: 'pmu-semantics.md §2.9',
  },
  {
    id: 'D17',
    question: 'Which DEBUGCTL bits are writable; reset value.',
    choice:
      'Bits 0, 1, 6-13 always; 14 with SMM_FRZ; 15 with TSX; everything else #GP. Only LBR (0), FREEZE_LBRS_ON_PMI (11) and FREEZE_PERFMON_ON_PMI (12) have effects. Reset 0.',
    why: 'BTS, BTF and uncore PMI are outside the model; storing them keeps read-back faithful.',
    ref: 'pmu-semantics.md §2.12',
  },
  {
    id: 'D18',
    question: 'LBR_SELECT reserved bits.',
    choice: 'Bits 63:10 #GP; EN_CALLSTACK (9) #GP on parts without call-stack mode.',
    why: 'Reserved bits #GP throughout the PMU MSRs.',
    ref: 'pmu-semantics.md §2.13',
  },
  {
    id: 'D19',
    question: 'Writing MSR_LASTBRANCH_TOS with a value >= depth.',
    choice: '#GP.',
    why: 'The TOS field is log2(depth) bits wide; software only restores valid indices.',
    ref: 'pmu-semantics.md §2.13',
  },
  {
    id: 'D20',
    question: 'Legacy LBR FROM/TO/INFO write checks.',
    choice:
      "The address part must be canonical (48-bit) under the format's flag bits; with format 4 and no TSX, bits 62:61 are part of the sign extension. INFO: only MISPRED, IN_TX/TSX_ABORT (format 5) and the cycle count are writable.",
    why: 'Matches the TSX quirk Linux works around, and the documented INFO layout.',
    ref: 'pmu-semantics.md §2.13, §5',
  },
  {
    id: 'D21',
    question: 'Call-stack mode pop semantics (legacy and Arch).',
    choice:
      'A near return that passes the filter pops the newest record (zeroed; legacy TOS moves back, Arch records shift up) and is not recorded itself.',
    why: 'Call-stack mode keeps only the live call chain; this is the simplest rule that does so.',
    ref: 'pmu-semantics.md §4.7, §8',
  },
  {
    id: 'D22',
    question: 'Does CPL filtering of LBRs use the source or the destination CPL?',
    choice: "The CPL the branch carries (defaulting to its unit's CPL), taken as the source.",
    why: 'A work unit is at one CPL; a ring-crossing branch states its own.',
    ref: 'pmu-semantics.md §4.7',
  },
  {
    id: 'D23',
    question: 'LBR cycle counts (INFO CYC_CNT, format 6 TO[63:48]).',
    choice:
      "Core cycles of the units since the previous record, saturating at 0xFFFF; a unit's cycles accrue before its branches, so the second branch of a unit records 0.",
    why: 'Deterministic, and uses the only cycle notion the model has.',
    ref: 'pmu-semantics.md §2.13, §3.4',
  },
  {
    id: 'D24',
    question: 'Arch LBR record MSRs beyond the current depth; FROM/TO/INFO write checks.',
    choice:
      'Index >= IA32_LBR_DEPTH #GPs (read and write). FROM/TO must be canonical; INFO bits 55:16 are reserved (#GP).',
    why: 'The records beyond the depth are not there; reserved bits #GP.',
    ref: 'pmu-semantics.md §3.3, §3.4',
  },
  {
    id: 'D25',
    question: 'IA32_LBR_DEPTH reset value; does writing the current value also clear?',
    choice: 'Reset to the maximum enumerated depth. Any accepted write clears every record, the same value included.',
    why: 'Linux writes the maximum at boot; "any write resets every record" is verified.',
    ref: 'pmu-semantics.md §3.3',
  },
  {
    id: 'D26',
    question: 'Does XRSTORS load IA32_LBR_DEPTH?',
    choice:
      'No. It loads LBR_CTL (reserved bits #GP) and the LER fields; the records only when the saved depth equals the current one, else it zeroes them.',
    why: 'The depth-mismatch reset only makes sense if DEPTH is not loaded.',
    ref: 'pmu-semantics.md §3.5',
  },
  {
    id: 'D27',
    question: 'LER MSRs (0x1DD/0x1DE, LER_INFO) with Arch LBR.',
    choice:
      'Not modelled as MSRs (#GP); the XSAVE component carries the LER fields as stored values and no branch updates them.',
    why: 'Exceptions are not part of the work-unit vocabulary.',
    ref: 'pmu-semantics.md §2.1, §8',
  },
  {
    id: 'D28',
    question: 'Arch LBR BR_TYPE of far branches.',
    choice: '0b1000 ("other branch").',
    why: 'Encodings 0-5 are the near kinds; values with bit 3 set are "other".',
    ref: 'pmu-semantics.md §3.4',
  },
  {
    id: 'D29',
    question: 'What do fixed counters 4-6 and non-architectural event encodings count?',
    choice: 'Nothing: they exist where enumerated and can be written, but no work unit occurrence matches them.',
    why: 'Their events are model-specific and outside the work-unit vocabulary.',
    ref: 'pmu-semantics.md §1.5',
  },
  {
    id: 'D30',
    question: 'AnyThread (EVTSEL[21], fixed nibble bit 2).',
    choice: 'Writable where enumerated (v3, v4, v5 not deprecated); no effect, since the model is one logical CPU.',
    why: 'The sibling thread does not exist in the model.',
    ref: 'pmu-semantics.md §2.3',
  },
  {
    id: 'D31',
    question: 'PEBS, DS, BTS, PT, SMM and INIT.',
    choice:
      'Not modelled: IA32_PEBS_ENABLE, IA32_DS_AREA and the PEBS MSRs #GP. EVTSEL.ADAPTIVE and the FIXED_CTR_CTRL adaptive bits are accepted with PEBS_BASELINE but do nothing.',
    why: 'Keeps legality faithful to parts that enumerate PEBS without simulating records.',
    ref: 'pmu-semantics.md §2.1, §2.3',
  },
  {
    id: 'D32',
    question: 'The LVTPC MSR address and writable bits.',
    choice:
      'x2APIC MSR 0x834 always accessible; vector (7:0), delivery mode (10:8) and mask (16) writable; delivery status (12) read-only and ignored on write; other bits #GP. Reset masked (0x10000).',
    why: 'x2APIC reserved bits #GP (SDM Vol. 3A, "Reserved Bit Checking": RsvdZ, a non-zero WRMSR of one faults); the LVT reset value is masked. Unverified: that a WRMSR of the read-only delivery status is ignored rather than refused.',
    ref: 'pmu-semantics.md §4.1, §4.4; SDM Vol. 3A x2APIC "Reserved Bit Checking"',
  },
  {
    id: 'D33',
    question: 'Does CPUID.0AH:EBX marking an architectural event unavailable stop it counting?',
    choice: 'No: enumeration is advisory and the encoding counts anyway.',
    why: 'Real CPUs count it; KVM once refused and fixed it (bugs.md #35).',
    ref: 'bugs.md #35',
  },
  {
    id: 'D34',
    question: 'RDPMC type 2000H with an index other than 0.',
    choice: '#GP.',
    why: 'Index 0 is PERF_METRICS; no other metrics index is defined.',
    ref: 'pmu-semantics.md §4.9',
  },
  {
    id: 'D35',
    question: 'Does a counter write set an overflow bit or raise a PMI by itself?',
    choice: 'No: only counting past the maximum does.',
    why: 'Overflow is a transition caused by an increment.',
    ref: 'pmu-semantics.md §4.8',
  },
  {
    id: 'D36',
    question: "CPL at which a unit's events count, and the order of effects inside a unit.",
    choice:
      "All of a unit's events count at its CPL. LBR records are written first, then counters count, then overflow sets status, freezes, and delivers a PMI at the unit's end.",
    why: 'So after a PMI the LBRs hold exactly the branches up to the overflowing unit (design.md property 3).',
    ref: 'pmu-semantics.md §4.2; design.md "Timing"',
  },
  {
    id: 'D37',
    question: 'Freeze_LBRs_On_PMI and Freeze_PerfMon_On_PMI (IA32_DEBUGCTL bits 11 and 12) on a version-1 PMU.',
    choice:
      'Absent below version 2: a DEBUGCTL write that sets either bit #GPs (reserved), so nothing freezes on a PMI of a version-1 PMU.',
    why: 'The current SDM offers both freezes "for processors supporting architectural performance monitoring version 2 or greater (i.e. CPUID.0AH:EAX[7:0] > 1)", the legacy DEBUGCTL form for versions 2 and 3, the streamlined one from version 4. Unverified: no version-1 part was run (whether it #GPs on bit 11 or ignores it), and the 2009 SDM (253668-032US §16.4.7) stated the freezes without a version condition. The model took that older reading until this entry was re-decided (v1 cleared DEBUGCTL.LBR as v2/v3 do); reports/filed/0005 rested on it.',
    ref: 'Intel SDM Vol. 3B §17.4.7 "Freezing LBR and Performance Counters on PMI", §17.4.1 IA32_DEBUGCTL; pmu-semantics.md §4.4, §4.5',
  },
  {
    id: 'D38',
    question: 'What EVTSEL.IN_TX / IN_TX_CP do to counting in a model without transactions.',
    choice: 'A counter with IN_TX set counts nothing (no work unit runs inside a transaction); IN_TX_CP has no effect.',
    why: 'IN_TX restricts counting to transactional regions [V]; checkpointing only matters on abort, which cannot happen.',
    ref: 'pmu-semantics.md §2.3',
  },
  {
    id: 'D39',
    question: 'Interrupts and exceptions are LBR records (§4.7); is the PMI itself recorded?',
    choice:
      'No: the model records only the taken branches a work unit lists. A workload that wants an interrupt in the LBRs lists it as a FAR branch.',
    why: 'Where a PMI lands in the handler is microarchitectural skid; the work-unit vocabulary states branches explicitly.',
    ref: 'pmu-semantics.md §4.7; design.md "Timing"',
  },
  {
    id: 'D40',
    question: 'MSR_LASTBRANCH_TOS and the legacy LBR records after RESET.',
    choice:
      'TOS 0 and every record 0. A read of TOS or of a record before software first wrote TOS relies on this choice.',
    why: "No reset value of TOS or of the records is architectural (the SDM lists none, pmu-semantics.md §4.10 has no row, and a deep C-state may zero TOS), so what such a read returns is the part's choice: any value is conformant, and a divergence there shows only which choice KVM's path makes.",
    ref: 'Intel SDM Vol. 3B §17.4.8 "LBR Stack", §17.10.3; pmu-semantics.md §4.10',
  },
  {
    id: 'D41',
    question:
      "What does FREEZE_LBRS_ON_PMI do on a part that enumerates Arch LBR (CPUID.(7,0):EDX[19], leaf 1CH) with a PMU version below 4, which has no GLOBAL_STATUS.LBR_FRZ? No CPU is such a part; a VMM makes one when it gives a guest Arch LBR under KVM's version-2 CPUID.0AH.",
    choice:
      "The legacy freeze of versions 2 and 3 applied to Arch LBR's enable: the PMI clears IA32_LBR_CTL.LBREn (as it clears DEBUGCTL.LBR on a legacy part); LBR_FRZ stays reserved. From version 4 the PMI sets LBR_FRZ and leaves LBREn set (pmu-semantics.md §3.6).",
    why: 'The SDM ties the LBR_FRZ freeze to version 4 and, below it, stops recording by clearing the enable bit; Arch LBR moved that bit from DEBUGCTL[0] to LBR_CTL[0]. The Arch LBR v2 series emulates exactly this for guests of versions 2 and 3 (intel_pmu_legacy_freezing_lbrs_on_pmi on GUEST_IA32_LBR_CTL), so a guest LBR freeze there is judged by this choice, not by hardware.',
    ref: 'pmu-semantics.md §3.6, §4.4; series.md §4.3 step 6',
  },
];

export function decision(id: string): Decision {
  const d = DECISIONS.find((x) => x.id === id);
  if (d === undefined) throw new Error(`no decision ${id}`);
  return d;
}
