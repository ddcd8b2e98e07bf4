/** Every wait of the suites that drive outside programs is bounded by this. */
export const STEP_TIMEOUT_MS = 10_000;

/** Rejects if `promise` has not settled within STEP_TIMEOUT_MS, naming `what`. */
export async function bounded<T>(what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
