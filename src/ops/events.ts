// The in-process event bus: typed, synchronous, and a listener that throws never breaks the emitter.
import type { Logger } from '../util/logger.js';
import type { NodeEvent } from './types.js';

export type EventListener = (event: NodeEvent) => void;

export class EventBus {
  private readonly listeners = new Set<EventListener>();

  constructor(private readonly log?: Pick<Logger, 'warn'>) {}

  /** listen to every event; returns the function that stops listening */
  on(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: NodeEvent): void {
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch (err) {
        this.log?.warn({ err: err instanceof Error ? err.message : String(err), event: event.type }, 'event listener failed');
      }
    }
  }
}
