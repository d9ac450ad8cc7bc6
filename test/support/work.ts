/** Work-unit pieces tests write by hand. */

/** A conditional branch at `cpl` from and to the start of kernel or user text (mispredicted if asked). */
export function condBranch(cpl: number, mispredict = false) {
  const at = cpl === 0 ? 0xffffffff81000000n : 0x400000n;
  return { from: at, to: at, kind: 'COND' as const, mispredict, cpl };
}
