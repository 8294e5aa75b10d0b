// The agent's desk as the event stream tells it: status, open offers, held
// work, and which item is selected.
import { computed, signal } from '@preact/signals';
import type { AgentStatus, AgentUpdate, Assignment, Offer } from '../gen/centralino/v1/routing_pb';
import type { Connection } from '../stream';

export type WorkItem =
  | { kind: 'offer'; id: string; offer: Offer }
  | { kind: 'held'; id: string; held: Assignment };

export const connection = signal<Connection>('connecting');
export const agentStatus = signal<AgentStatus | undefined>(undefined);
/** When the status (or its reason) last changed, by this browser's clock. */
export const statusSince = signal<number>(Date.now());
export const offers = signal<Offer[]>([]);
export const held = signal<Assignment[]>([]);
/** Held interactions whose customer has gone (hung up, left the chat). */
export const customerLeft = signal<ReadonlySet<string>>(new Set());
export const selectedId = signal<string | null>(null);

export const workItems = computed<WorkItem[]>(() => [
  ...offers.value.map((offer) => ({ kind: 'offer' as const, id: offer.interactionId, offer })),
  ...held.value.map((a) => ({ kind: 'held' as const, id: a.interactionId, held: a })),
]);

export const selected = computed<WorkItem | undefined>(() => {
  const items = workItems.value;
  return items.find((w) => w.id === selectedId.value) ?? items.find((w) => w.kind === 'held') ?? items[0];
});

/** Called for each offer that was not open before (a re-offer counts again). */
let onNewOffer: (offer: Offer) => void = () => {};

export function whenNewOffer(handler: (offer: Offer) => void): void {
  onNewOffer = handler;
}

function setStatus(s: AgentStatus | undefined): void {
  const before = agentStatus.value;
  if (!before || !s || before.status !== s.status || before.reason !== s.reason || before.presence !== s.presence) {
    statusSince.value = Date.now();
  }
  agentStatus.value = s;
}

function setOffers(next: Offer[]): void {
  const open = new Set(offers.value.map((o) => o.interactionId));
  offers.value = next;
  for (const o of next) if (!open.has(o.interactionId)) onNewOffer(o);
}

function addOffer(o: Offer): void {
  setOffers([...offers.value.filter((x) => x.interactionId !== o.interactionId), o]);
}

export function reset(): void {
  setStatus(undefined);
  offers.value = [];
  held.value = [];
  customerLeft.value = new Set();
}

export function apply(update: AgentUpdate): void {
  const u = update.update;
  switch (u.case) {
    case 'snapshot':
      setStatus(u.value.status);
      setOffers(u.value.offers);
      held.value = u.value.assigned;
      customerLeft.value = new Set(
        [...customerLeft.value].filter((id) => u.value.assigned.some((a) => a.interactionId === id)),
      );
      break;
    case 'offer':
      addOffer(u.value);
      break;
    case 'offerRevoked':
      offers.value = offers.value.filter((o) => o.interactionId !== u.value.interactionId);
      break;
    case 'assigned':
      offers.value = offers.value.filter((o) => o.interactionId !== u.value.interactionId);
      held.value = [...held.value.filter((a) => a.interactionId !== u.value.interactionId), u.value];
      break;
    case 'status':
      setStatus(u.value);
      break;
    case 'customerLeft':
      customerLeft.value = new Set([...customerLeft.value, u.value.interactionId]);
      break;
    case 'released':
      dropHeld(u.value.interactionId);
      break;
    case 'result':
    case undefined:
      break;
  }
}

/**
 * Drops held work: on `released` (completed, from any desktop), and at once
 * when this desk completes or transfers it.
 */
export function dropHeld(id: string): void {
  held.value = held.value.filter((a) => a.interactionId !== id);
  if (selectedId.value === id) selectedId.value = null;
}
