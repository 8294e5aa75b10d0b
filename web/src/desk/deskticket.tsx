// Walk-in desk work: the counter the agent sits at, and recall, no-show and
// start for the called ticket (finishing and transfer are the desk's
// complete and transfer).
import { useState } from 'preact/hooks';
import { desk } from '../api';
import { showError, showNotice } from '../alert';
import { t } from '../i18n';
import type { DeskTicket } from '../gen/centralino/v1/desk_pb';
import type { Interaction } from '../gen/centralino/v1/interaction_pb';

const COUNTER_KEY = 'centralino.counter';

/** Where the agent sits: OpenCounter, remembered in this browser. */
export function CounterForm() {
  const saved = JSON.parse(localStorage.getItem(COUNTER_KEY) ?? '{}') as { site?: string; counter?: string };
  const [site, setSite] = useState(saved.site ?? '');
  const [counter, setCounter] = useState(saved.counter ?? '');
  const [open, setOpen] = useState('');
  async function submit(e: Event) {
    e.preventDefault();
    try {
      const r = await desk.openCounter({ site: site.trim(), counter: counter.trim() });
      localStorage.setItem(COUNTER_KEY, JSON.stringify({ site: r.site, counter: r.counter }));
      setOpen(`${r.site} · ${r.counter}`);
    } catch (err) {
      showError(err);
    }
  }
  async function close() {
    try {
      await desk.closeCounter({});
      setOpen('');
    } catch (err) {
      showError(err);
    }
  }
  return (
    <form class="card counter inline-form" onSubmit={submit} aria-label={t('counter')}>
      <label for="counter-site">{t('site')}</label>
      <input id="counter-site" size={8} required value={site} onInput={(e) => setSite(e.currentTarget.value)} />
      <label for="counter-name">{t('counter')}</label>
      <input id="counter-name" size={6} required value={counter} onInput={(e) => setCounter(e.currentTarget.value)} />
      <button type="submit" class="small" data-testid="open-counter">
        {t('openCounter')}
      </button>
      {open && (
        <>
          <span data-testid="counter-open">{t('counterOpen', { where: open })}</span>
          <button type="button" class="small" onClick={() => void close()}>
            {t('closeCounter')}
          </button>
        </>
      )}
    </form>
  );
}

export function TicketControls({ interaction }: { interaction: Interaction }) {
  const [ticket, setTicket] = useState<DeskTicket | null>(null);
  const label = interaction.attributes['desk.ticket'] ?? '';
  const req = { interactionId: interaction.id };
  async function run(call: () => Promise<DeskTicket>) {
    try {
      const r = await call();
      setTicket(r);
      showNotice(t('ticketState', { label: r.label, state: r.state, recalls: r.recalls }));
    } catch (e) {
      showError(e);
    }
  }
  return (
    <div class="ticket">
      <p>
        {t('ticket')}: <strong class="ticket-label" data-testid="ticket-label">{label}</strong>
        {ticket && (
          <span class="muted" data-testid="ticket-state">
            {' '}
            · {ticket.state} · {t('recalls', { n: ticket.recalls })}
          </span>
        )}
      </p>
      <div class="actions">
        <button type="button" data-testid="desk-start" onClick={() => void run(() => desk.startService(req))}>
          {t('deskStart')}
        </button>
        <button type="button" data-testid="desk-recall" onClick={() => void run(() => desk.recall(req))}>
          {t('deskRecall')}
        </button>
        <button type="button" data-testid="desk-no-show" onClick={() => void run(() => desk.noShow(req))}>
          {t('deskNoShow')}
        </button>
      </div>
    </div>
  );
}
