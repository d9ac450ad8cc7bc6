/**
 * Arbitraries with a fast path for fc.commands. Each `Drawn` is a fast-check arbitrary and a function that draws the
 * same value from the random source directly. fc.commands generates its commands without bias, and then an integer,
 * a constantFrom, a oneof, a tuple, a map or a chain is a fixed sequence of `mrng.nextInt` calls, which `draw` makes
 * without the Value wrapper and shrink context fast-check builds at every level (a dozen per command, a quarter of a
 * quiet program's generation). `fast(d)` is the arbitrary fc.commands is given: under bias, or to shrink, it is the
 * fast-check arbitrary, regenerated from the random source as it was before the draw, so every seed gives the same
 * programs and the same shrinks (draw.test.ts compares them).
 */

import fc from 'fast-check';

export interface Drawn<T> {
  readonly arb: fc.Arbitrary<T>;
  /** The value `arb.generate(mrng, undefined)` makes, drawn from `mrng` in the same order. */
  readonly draw: (mrng: fc.Random) => T;
}

/**
 * A Drawn whose fast-check arbitrary is built when first asked for (to shrink, or under bias): a program's own
 * arbitraries (its focus MSRs) are drawn from thousands of times for each one built.
 */
function drawn<T>(make: () => fc.Arbitrary<T>, draw: (mrng: fc.Random) => T): Drawn<T> {
  return new LazyDrawn(make, draw);
}

/** A class, not a literal with a getter: a literal's accessor pair was made anew for each of a program's draws. */
class LazyDrawn<T> implements Drawn<T> {
  private built: fc.Arbitrary<T> | undefined;
  constructor(
    private readonly make: () => fc.Arbitrary<T>,
    readonly draw: (mrng: fc.Random) => T,
  ) {}
  get arb(): fc.Arbitrary<T> {
    return (this.built ??= this.make());
  }
}

/** fc.integer({ min, max }): one draw. */
export const integer = (min: number, max: number): Drawn<number> =>
  drawn(
    () => fc.integer({ min, max }),
    (r) => r.nextInt(min, max),
  );

export const nat = (max: number): Drawn<number> => integer(0, max);

/** fc.boolean(): an integer in [0, 1] (its no-bias wrapper only matters under bias, where the arbitrary draws). */
export const boolean = (): Drawn<boolean> =>
  drawn(
    () => fc.boolean(),
    (r) => r.nextInt(0, 1) === 1,
  );

/** fc.bigInt(min, max): one draw. */
export const bigInt = (min: bigint, max: bigint): Drawn<bigint> =>
  drawn(
    () => fc.bigInt(min, max),
    (r) => r.nextBigInt(min, max),
  );

/** fc.constantFrom: one draw, none for a single value. */
export function constantFrom<const T>(...values: readonly T[]): Drawn<T> {
  const n = values.length - 1;
  return drawn(() => fc.constantFrom(...values), n === 0 ? () => values[0]! : (r) => values[r.nextInt(0, n)]!);
}

/** A fast-check arbitrary as it is: drawn through its own generate (for the shapes kept out of the fast path). */
export const of = <T>(arb: fc.Arbitrary<T>): Drawn<T> => ({ arb, draw: (r) => arb.generate(r, undefined).value });

/**
 * fc.array(item, { minLength, maxLength }): its length (up to the length fast-check generates to without bias, which
 * the global size decides: read from the arbitrary it built), then each item.
 */
export function array<T>(item: Drawn<T>, minLength: number, maxLength: number): Drawn<T[]> {
  const arb = fc.array(item.arb, { minLength, maxLength });
  const upTo = (arb as unknown as { maxGeneratedLength?: unknown }).maxGeneratedLength;
  if (typeof upTo !== 'number') return of(arb);
  return {
    arb,
    draw: (r) => {
      const n = r.nextInt(minLength, upTo);
      const out: T[] = [];
      for (let i = 0; i < n; i++) out.push(item.draw(r));
      return out;
    },
  };
}

export interface Weighted<T> {
  readonly drawn: Drawn<T>;
  readonly weight: number;
}

/** fc.oneof: one draw in the total weight (no depth: none of these recurse), then the chosen arbitrary's. */
export function oneof<T>(...options: readonly (Drawn<T> | Weighted<T>)[]): Drawn<T> {
  const ws = options.map((o): Weighted<T> => ('weight' in o ? o : { drawn: o, weight: 1 }));
  const upTo: number[] = [];
  let total = 0;
  for (const w of ws) upTo.push((total += w.weight));
  const last = total - 1;
  return drawn(
    () => fc.oneof(...ws.map((w) => ({ arbitrary: w.drawn.arb, weight: w.weight }))),
    (r) => {
      const s = r.nextInt(0, last);
      let i = 0;
      while (s >= upTo[i]!) i++;
      return ws[i]!.drawn.draw(r);
    },
  );
}

/** fc.tuple(a, b).map(f): each in order, then f. */
export function map2<A, B, T>(a: Drawn<A>, b: Drawn<B>, f: (a: A, b: B) => T): Drawn<T> {
  return drawn(
    () => fc.tuple(a.arb, b.arb).map(([x, y]) => f(x, y)),
    (r) => f(a.draw(r), b.draw(r)),
  );
}

/** fc.tuple(a, b, c).map(f). */
export function map3<A, B, C, T>(a: Drawn<A>, b: Drawn<B>, c: Drawn<C>, f: (a: A, b: B, c: C) => T): Drawn<T> {
  return drawn(
    () => fc.tuple(a.arb, b.arb, c.arb).map(([x, y, z]) => f(x, y, z)),
    (r) => {
      const x = a.draw(r);
      const y = b.draw(r);
      return f(x, y, c.draw(r));
    },
  );
}

/** arb.map(f). */
export const map = <A, T>(a: Drawn<A>, f: (a: A) => T): Drawn<T> =>
  drawn(
    () => a.arb.map(f),
    (r) => f(a.draw(r)),
  );

/** a.chain(f): a's value, then what f makes of it. */
export const chain = <A, T>(a: Drawn<A>, f: (a: A) => Drawn<T>): Drawn<T> =>
  drawn(
    () => a.arb.chain((x) => f(x).arb),
    (r) => f(a.draw(r)).draw(r),
  );

/** fc.tuple(a, b).chain(f): the pair, then what f makes of it. */
export function chain2<A, B, T>(a: Drawn<A>, b: Drawn<B>, f: (a: A, b: B) => Drawn<T>): Drawn<T> {
  return drawn(
    () => fc.tuple(a.arb, b.arb).chain(([x, y]) => f(x, y).arb),
    (r) => {
      const x = a.draw(r);
      return f(x, b.draw(r)).draw(r);
    },
  );
}

/** fc.record(model) of drawn fields (draws each field in key order, then the null-prototype coin) mapped by f. */
export function record<M extends Readonly<Record<string, Drawn<unknown>>>, T>(
  model: M,
  f: (r: { -readonly [K in keyof M]: M[K] extends Drawn<infer U> ? U : never }) => T,
): Drawn<T> {
  type R = Parameters<typeof f>[0];
  const keys = Object.keys(model) as (keyof M & string)[];
  return drawn(
    () => {
      const arbs = Object.fromEntries(keys.map((k) => [k, model[k]!.arb])) as Record<string, fc.Arbitrary<unknown>>;
      return fc.record(arbs).map((x) => f(x as R));
    },
    (r) => {
      const o: Record<string, unknown> = {};
      for (const k of keys) o[k] = model[k]!.draw(r);
      r.nextInt(0, 1); // the record's null-prototype coin, which f does not see
      return f(o as R);
    },
  );
}

/** Where a fast draw started: shrinking regenerates the value through fast-check's arbitrary from here. */
class Redraw {
  constructor(readonly start: fc.Random) {}
}

class FastArbitrary<T> extends fc.Arbitrary<T> {
  constructor(readonly drawn: Drawn<T>) {
    super();
  }
  generate(mrng: fc.Random, bias: number | undefined): fc.Value<T> {
    if (bias !== undefined) return this.drawn.arb.generate(mrng, bias);
    const start = mrng.clone();
    return new fc.Value(this.drawn.draw(mrng), new Redraw(start));
  }
  canShrinkWithoutContext(value: unknown): value is T {
    return this.drawn.arb.canShrinkWithoutContext(value);
  }
  shrink(value: T, context: unknown): fc.Stream<fc.Value<T>> {
    if (!(context instanceof Redraw)) return this.drawn.arb.shrink(value, context);
    const g = this.drawn.arb.generate(context.start.clone(), undefined);
    return this.drawn.arb.shrink(g.value_, g.context);
  }
}

/** The arbitrary to give fc.commands (or anything): drawn directly where there is no bias. */
export const fast = <T>(d: Drawn<T>): fc.Arbitrary<T> => new FastArbitrary(d);

/** The fast-check arbitrary behind `fast(d)` (any other arbitrary as it is): what the fast path must equal. */
export const slowOf = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T> =>
  a instanceof FastArbitrary ? (a as FastArbitrary<T>).drawn.arb : a;
