/**
 * The one clock. Everything that reads the time takes a Clock, so tests can move time forward
 * (client expiry, code and token lifetimes) without sleeping.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** Whole seconds since the epoch, the unit of every stored timestamp and JWT claim. */
export function nowSeconds(clock: Clock): number {
  return Math.floor(clock.now() / 1000);
}
