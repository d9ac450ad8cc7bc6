/** What `f` threw, or undefined if it returned: for asserting on an error's class and text together. */
export function thrownBy(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}
