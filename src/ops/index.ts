// The operations layer: one runner (operations.ts), its events (events.ts) and vocabulary (types.ts).
export * from './types.js';
export * from './events.js';
export * from './operations.js';
export * from './memory.js';
export * from './task-lock.js';
