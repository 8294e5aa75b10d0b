// One list of offers and held work across channels.
import { useLayoutEffect } from 'preact/hooks';
import { ChannelBadge } from '../channel';
import { duration, millis, now } from '../clock';
import { t } from '../i18n';
import type { Interaction } from '../gen/centralino/v1/interaction_pb';
import type { Assignment, Offer } from '../gen/centralino/v1/routing_pb';
import { accept, reject } from './actions';
import { customerLeft, held, offers, selected, selectedId } from './state';

declare global {
  interface Window {
    /** Each offer's first appearance on screen (epoch ms), for latency tests. */
    __centralinoOfferShown: { id: string; at: number }[];
  }
}

window.__centralinoOfferShown ??= [];

/** A line that tells the items apart: subject, ticket, or who. */
export function summary(i: Interaction | undefined): string {
  if (!i) return '';
  return i.subject || i.attributes['desk.ticket'] || i.attributes['customer_name'] || i.identifiers[0]?.value || '';
}

function Select({ id, text }: { id: string; text: string }) {
  return (
    <button type="button" class="link select" data-testid="select" onClick={() => (selectedId.value = id)}>
      {text || t('noSubject')}
    </button>
  );
}

function OfferRow({ offer, current }: { offer: Offer; current: boolean }) {
  const id = offer.interactionId;
  // Runs once per row inserted into the DOM, before the browser paints it.
  useLayoutEffect(() => {
    // The wall clock, as the publisher's: a benchmark compares the two.
    window.__centralinoOfferShown.push({ id, at: Date.now() });
  }, [id]);
  const left = (millis(offer.expiresAt) ?? now.value) - now.value;
  return (
    <li
      class={current ? 'work offer current' : 'work offer'}
      data-testid="offer"
      data-interaction={id}
      aria-current={current ? 'true' : undefined}
    >
      <div class="work-head">
        <ChannelBadge channel={offer.channel} />
        <span class="queue">{offer.queue}</span>
        <span class="sr-only">{t('expiresIn')}</span>
        <span class={left < 10_000 ? 'countdown urgent' : 'countdown'} data-testid="countdown">
          {duration(left)}
        </span>
      </div>
      <Select id={id} text={summary(offer.interaction)} />
      <div class="actions">
        <button type="button" class="primary" data-testid="accept" onClick={() => void accept(id)}>
          {t('accept')}
        </button>
        <button type="button" data-testid="reject" onClick={() => void reject(id)}>
          {t('reject')}
        </button>
      </div>
    </li>
  );
}

function HeldRow({ a, current }: { a: Assignment; current: boolean }) {
  const gone = customerLeft.value.has(a.interactionId);
  return (
    <li
      class={current ? 'work held current' : 'work held'}
      data-testid="held"
      data-interaction={a.interactionId}
      aria-current={current ? 'true' : undefined}
    >
      <div class="work-head">
        <ChannelBadge channel={a.channel} />
        <span class="queue">{a.queue}</span>
        {gone && <span class="tag">{t('customerLeft')}</span>}
      </div>
      <Select id={a.interactionId} text={summary(a.interaction)} />
    </li>
  );
}

export function WorkList() {
  const current = selected.value?.id;
  return (
    <section class="card worklist" aria-labelledby="work-title">
      <h2 id="work-title">{t('work')}</h2>
      <h3>
        {t('offers')} <span class="count">{offers.value.length}</span>
      </h3>
      {offers.value.length === 0 ? (
        <p class="muted">{t('noOffers')}</p>
      ) : (
        <ul class="plain">
          {offers.value.map((o) => (
            <OfferRow key={o.interactionId} offer={o} current={o.interactionId === current} />
          ))}
        </ul>
      )}
      <h3>
        {t('held')} <span class="count">{held.value.length}</span>
      </h3>
      {held.value.length === 0 ? (
        <p class="muted">{t('noHeld')}</p>
      ) : (
        <ul class="plain">
          {held.value.map((a) => (
            <HeldRow key={a.interactionId} a={a} current={a.interactionId === current} />
          ))}
        </ul>
      )}
    </section>
  );
}
