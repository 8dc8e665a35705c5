// Deadlines: the one TimeoutError of the project and a helper that races a promise against a timer. The API server
// answers a TimeoutError as the original's `<op> timeout`; transports reject with it when a node does not answer.

/** a deadline passed (name 'TimeoutError', as the platform's AbortSignal.timeout() reason) */
export class TimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TimeoutError';
  }
}

/**
 * true for our TimeoutError and for any error named 'TimeoutError': the platform's (AbortSignal.timeout() rejects
 * with a DOMException of that name) and a foreign NodeTransport's, whose contract documents the name.
 */
export function isTimeoutError(err: unknown): boolean {
  return err instanceof TimeoutError || (err instanceof Error && err.name === 'TimeoutError');
}

/**
 * `p`, or a TimeoutError(`message`) once `ms` have passed, whichever comes first. The timer is cleared either way;
 * `p` itself is not cancelled (pass it an AbortSignal for that).
 */
export async function withDeadline<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(message)), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
