/**
 * Which unverified decisions (D… here, H… in the host model, K… in the KVM port, W… in the world) a run
 * relied on. The code that applies a decision calls relied(id) at the point where the decision's choice,
 * rather than its alternative, decides an outcome (a #GP, a count, a freeze, a dropped PMI). While a
 * DecisionLog records (recording(log, f)), every such id lands in it, whichever side's CPU, perf or KVM
 * applied it; otherwise relied() costs one null test, so the search pays nothing for it.
 *
 * A report replays its program up to the first divergence while recording: the ids it gets are every
 * decision applied before the divergence, on either side, the only ones its verdict can rest on.
 */

/** A decision's id: D1, H4, K10, W6. */
export type DecisionId = `${'D' | 'H' | 'K' | 'W'}${number}`;

/** The decisions a run relied on, in the order first met. */
export class DecisionLog {
  private readonly seen = new Set<DecisionId>();
  add(id: DecisionId): void {
    this.seen.add(id);
  }
  has(id: DecisionId): boolean {
    return this.seen.has(id);
  }
  get ids(): DecisionId[] {
    return [...this.seen];
  }
}

let active: DecisionLog | null = null;

/** The code applying decision `id` has just decided an outcome by it. */
export function relied(id: DecisionId): void {
  if (active !== null) active.add(id);
}

/** Whether a log records: a check that costs more than a null test is made only then. */
export const isRecording = (): boolean => active !== null;

/** Runs `f` with `log` recording every decision applied meanwhile (nested recordings see only their own). */
export function recording<T>(log: DecisionLog, f: () => T): T {
  const outer = active;
  active = log;
  try {
    return f();
  } finally {
    active = outer;
  }
}
