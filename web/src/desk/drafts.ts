// What the agent is writing for each held item, kept while they switch.
import { signal, type Signal } from '@preact/signals';

export const DISPOSITIONS = ['resolved', 'follow-up', 'no-answer', 'wrong-number', 'other'] as const;

export interface Draft {
  reply: Signal<string>;
  /** Also the wrap-up notes sent on completion. */
  notes: Signal<string>;
  disposition: Signal<string>;
  quote: Signal<boolean>;
  transferQueue: Signal<string>;
  /** The id of the reply being sent, kept until the server took it (a retry reuses it). */
  messageId: string | null;
}

const drafts = new Map<string, Draft>();

export function draftFor(id: string): Draft {
  let d = drafts.get(id);
  if (!d) {
    d = {
      reply: signal(''),
      notes: signal(''),
      disposition: signal<string>(DISPOSITIONS[0]),
      quote: signal(true),
      transferQueue: signal(''),
      messageId: null,
    };
    drafts.set(id, d);
  }
  return d;
}

export function dropDraft(id: string): void {
  drafts.delete(id);
}
