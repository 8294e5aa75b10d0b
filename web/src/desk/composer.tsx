// Working a held item: reply (email, SMS), canned responses, private note,
// transfer, and completion with a disposition.
import { useState } from 'preact/hooks';
import { conversation, newId } from '../api';
import { showError, showNotice } from '../alert';
import { CANNED, fillCanned } from '../canned';
import { lang, t } from '../i18n';
import { encode } from '../sms';
import { Channel } from '../gen/centralino/v1/interaction_pb';
import type { MessageRecord } from '../gen/centralino/v1/history_pb';
import type { Assignment } from '../gen/centralino/v1/routing_pb';
import { complete, transfer } from './actions';
import { DISPOSITIONS, draftFor, dropDraft, type Draft } from './drafts';
import { when } from './timeline';

function dispositionText(d: string): string {
  const keys = {
    resolved: 'dispResolved',
    'follow-up': 'dispFollowUp',
    'no-answer': 'dispNoAnswer',
    'wrong-number': 'dispWrongNumber',
    other: 'dispOther',
  } as const;
  return d in keys ? t(keys[d as keyof typeof keys]) : d;
}

function quoted(m: MessageRecord): string {
  const head = t('quoteHeader', { who: m.sender || t('customer'), when: when(m.at) });
  return `${head}\n${m.body
    .split('\n')
    .map((l) => `> ${l}`)
    .join('\n')}`;
}

function SmsCount({ text }: { text: string }) {
  const c = encode(text);
  const label = c.encoding === 'gsm7' ? 'GSM 7-bit' : 'UCS-2';
  return (
    <p class="muted" aria-live="polite">
      <span data-testid="sms-segments" data-segments={c.segments} data-encoding={c.encoding} data-units={c.units}>
        {`${c.segments} SMS · ${label}`}
      </span>{' '}
      · {t('smsUnits', { units: c.units })}
    </p>
  );
}

function Reply({ a, draft, quoteFrom }: { a: Assignment; draft: Draft; quoteFrom?: MessageRecord }) {
  const email = a.channel === Channel.EMAIL;
  const [sending, setSending] = useState(false);
  async function send(e: Event) {
    e.preventDefault();
    const text = draft.reply.value.trim();
    if (!text) return;
    const body = email && draft.quote.value && quoteFrom ? `${text}\n\n${quoted(quoteFrom)}` : text;
    draft.messageId ??= newId();
    setSending(true);
    try {
      const r = await conversation.sendMessage({
        message: { messageId: draft.messageId, interactionId: a.interactionId, channel: a.channel, body },
      });
      draft.messageId = null;
      draft.reply.value = '';
      showNotice(
        email ? t('sentEmail', { status: r.status, subject: r.subject }) : t('sentSms', { status: r.status, segments: r.segments }),
      );
    } catch (err) {
      showError(err);
    }
    setSending(false);
  }
  return (
    <form class="reply" onSubmit={send}>
      <label for="reply-body">{email ? t('replyEmail') : t('replySms')}</label>
      <textarea
        id="reply-body"
        data-testid="reply-body"
        rows={email ? 8 : 4}
        value={draft.reply.value}
        onInput={(e) => (draft.reply.value = e.currentTarget.value)}
      />
      {!email && <SmsCount text={draft.reply.value} />}
      {email && quoteFrom && (
        <>
          <label class="check">
            <input
              type="checkbox"
              checked={draft.quote.value}
              onChange={(e) => (draft.quote.value = e.currentTarget.checked)}
            />{' '}
            {t('includeQuote')}
          </label>
          {draft.quote.value && <blockquote class="quote">{quoted(quoteFrom)}</blockquote>}
        </>
      )}
      <button type="submit" class="primary" data-testid="reply-send" disabled={sending}>
        {t('send')}
      </button>
    </form>
  );
}

function CannedPicker({ onInsert }: { onInsert: (text: string) => void }) {
  const [choice, setChoice] = useState(CANNED[0]!.id);
  return (
    <div class="inline-form">
      <label for="canned">{t('canned')}</label>
      <select id="canned" data-testid="canned" value={choice} onChange={(e) => setChoice(e.currentTarget.value)}>
        {CANNED.map((c) => (
          <option key={c.id} value={c.id}>
            {c.title[lang.value]}
          </option>
        ))}
      </select>
      <button
        type="button"
        class="small"
        data-testid="canned-insert"
        onClick={() => {
          const c = CANNED.find((x) => x.id === choice);
          if (c) onInsert(c.body[lang.value]);
        }}
      >
        {t('insert')}
      </button>
    </div>
  );
}

export function Composer({
  a,
  customerName,
  agentName,
  quoteFrom,
}: {
  a: Assignment;
  customerName: string;
  agentName: string;
  quoteFrom?: MessageRecord;
}) {
  const draft = draftFor(a.interactionId);
  const replies = a.channel === Channel.EMAIL || a.channel === Channel.SMS;
  const insert = (text: string) => {
    const filled = fillCanned(text, { name: customerName || t('customerFallback'), agent: agentName });
    const target = replies ? draft.reply : draft.notes;
    target.value = target.value ? `${target.value}\n${filled}` : filled;
  };

  async function finish(e: Event) {
    e.preventDefault();
    if (await complete(a.interactionId, draft.disposition.value, draft.notes.value)) dropDraft(a.interactionId);
  }

  async function move(e: Event) {
    e.preventDefault();
    const queue = draft.transferQueue.value.trim();
    if (!queue) return;
    if (await transfer(a.interactionId, queue)) {
      dropDraft(a.interactionId);
      showNotice(t('transferred', { queue }));
    }
  }

  return (
    <section class="card composer" aria-labelledby="composer-title">
      <h2 id="composer-title">{t('handling')}</h2>
      {replies && <Reply a={a} draft={draft} quoteFrom={quoteFrom} />}
      <CannedPicker onInsert={insert} />
      <form onSubmit={finish} class="complete">
        <label for="notes">{t('privateNote')}</label>
        <textarea
          id="notes"
          data-testid="notes"
          rows={3}
          value={draft.notes.value}
          onInput={(e) => (draft.notes.value = e.currentTarget.value)}
        />
        <div class="inline-form">
          <label for="disposition">{t('disposition')}</label>
          <select
            id="disposition"
            data-testid="disposition"
            value={draft.disposition.value}
            onChange={(e) => (draft.disposition.value = e.currentTarget.value)}
          >
            {DISPOSITIONS.map((d) => (
              <option key={d} value={d}>
                {dispositionText(d)}
              </option>
            ))}
          </select>
          <button type="submit" class="primary" data-testid="complete">
            {t('complete')}
          </button>
        </div>
      </form>
      <form onSubmit={move} class="inline-form">
        <label for="transfer-queue">{t('transferTo')}</label>
        <input
          id="transfer-queue"
          data-testid="transfer-queue"
          value={draft.transferQueue.value}
          onInput={(e) => (draft.transferQueue.value = e.currentTarget.value)}
        />
        <button type="submit" data-testid="transfer">
          {t('transfer')}
        </button>
      </form>
    </section>
  );
}
