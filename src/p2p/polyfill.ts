// Node 20 lacks Promise.withResolvers (added in Node 22); js-libp2p 3 (stream utils, yamux, ping, it-queue) calls
// it at run time. Every entry point that loads libp2p imports this module FIRST (src/p2p/host.ts does, and
// src/cli/main.ts imports it before anything else). test/integration/p2p-smoke.test.ts fails loudly without it.
declare global {
  interface PromiseConstructor {
    withResolvers<T>(): { promise: Promise<T>; resolve: (value: T | PromiseLike<T>) => void; reject: (reason?: unknown) => void };
  }
}

export const NATIVE_WITH_RESOLVERS = typeof (Promise as { withResolvers?: unknown }).withResolvers === 'function';

if (!NATIVE_WITH_RESOLVERS) {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: function withResolvers<T>(this: PromiseConstructor) {
      let resolve!: (value: T | PromiseLike<T>) => void;
      let reject!: (reason?: unknown) => void;
      // `this`, not Promise: a subclass calling it gets its own kind of promise, as the native one does
      const promise = new (this ?? Promise)<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}

export {};
