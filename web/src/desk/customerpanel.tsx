// The customer beside a work item: identifiers, consent, merge suggestions,
// timeline.
import { useState } from 'preact/hooks';
import { customerHistory, newId } from '../api';
import { showError, showNotice } from '../alert';
import { channelName, identifierKind } from '../channel';
import { t } from '../i18n';
import { ConsentState } from '../gen/centralino/v1/history_pb';
import type { Customer, MergeSuggestion } from '../gen/centralino/v1/history_pb';
import type { CustomerView } from './customer';
import { Timeline, when } from './timeline';

function consentText(s: ConsentState): string {
  if (s === ConsentState.GRANTED) return t('consentGranted');
  if (s === ConsentState.REVOKED) return t('consentRevoked');
  return t('consentUnknown');
}

function Merge({ s, customer, onMerged }: { s: MergeSuggestion; customer: Customer; onMerged: () => void }) {
  const [confirming, setConfirming] = useState(false);
  const other = s.customerId === customer.id ? s.otherCustomerId : s.customerId;
  async function merge() {
    try {
      const r = await customerHistory.mergeCustomers({
        requestId: newId(),
        survivorId: customer.id,
        mergedId: other,
        reason: `merge suggestion ${s.id}`,
      });
      showNotice(t('merged', { ids: r.identifiersMoved, interactions: r.interactionsMoved }));
      onMerged();
    } catch (e) {
      showError(e);
    }
    setConfirming(false);
  }
  return (
    <li data-testid="merge-suggestion" data-suggestion={s.id}>
      <span>
        {t('mergeWith', { other })} ({s.identifiers.map((i) => i.value).join(', ')})
      </span>{' '}
      {confirming ? (
        <>
          <button type="button" class="danger small" data-testid="merge-confirm" onClick={() => void merge()}>
            {t('mergeConfirm')}
          </button>{' '}
          <button type="button" class="small" onClick={() => setConfirming(false)}>
            {t('cancel')}
          </button>
        </>
      ) : (
        <button type="button" class="small" data-testid="merge" onClick={() => setConfirming(true)}>
          {t('merge')}
        </button>
      )}
    </li>
  );
}

export function CustomerPanel({
  view,
  current,
  onMore,
  onReload,
}: {
  view: CustomerView;
  current: string;
  onMore: () => void;
  onReload: () => void;
}) {
  const c = view.customer;
  return (
    <section class="card customer" aria-labelledby="customer-title">
      <h2 id="customer-title">
        {t('customer')}
        {c ? `: ${c.displayName || c.id}` : ''}
      </h2>
      {view.error && <p class="error">{view.error}</p>}
      {view.loading ? (
        <p class="muted">{t('loading')}</p>
      ) : !c ? (
        <p class="muted">
          {t('customerUnknown')}{' '}
          <button type="button" class="small" onClick={onReload}>
            {t('reload')}
          </button>
        </p>
      ) : (
        <>
          <dl class="pairs">
            {c.identifiers.map((i) => (
              <div key={`${i.kind}:${i.value}`}>
                <dt>{identifierKind(i.kind)}</dt>
                <dd>{i.value}</dd>
              </div>
            ))}
          </dl>
          <h3>{t('consent')}</h3>
          {view.consent.length === 0 ? (
            <p class="muted" data-testid="consent">
              {t('consentNone')}
            </p>
          ) : (
            <ul class="plain" data-testid="consent">
              {view.consent.map((r) => (
                <li key={`${r.channel}/${r.purpose}`} data-state={ConsentState[r.state]}>
                  {channelName(r.channel)} · {r.purpose || t('consentAll')}:{' '}
                  <strong class={r.state === ConsentState.REVOKED ? 'bad-text' : ''}>{consentText(r.state)}</strong>{' '}
                  <span class="muted">
                    ({r.source}, {when(r.at)})
                  </span>
                </li>
              ))}
            </ul>
          )}
          {view.suggestions.length > 0 && (
            <>
              <h3>{t('mergeSuggestions')}</h3>
              <ul class="plain">
                {view.suggestions.map((s) => (
                  <Merge key={s.id} s={s} customer={c} onMerged={onReload} />
                ))}
              </ul>
            </>
          )}
          <h3>{t('timeline')}</h3>
          <Timeline records={view.timeline} current={current} hasMore={!!view.nextPage} onMore={onMore} />
        </>
      )}
    </section>
  );
}
