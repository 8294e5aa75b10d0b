// The customer's timeline: every channel, messages inline.
import { ChannelBadge } from '../channel';
import { millis } from '../clock';
import { locale, t } from '../i18n';
import { Direction } from '../gen/centralino/v1/interaction_pb';
import type { InteractionRecord } from '../gen/centralino/v1/history_pb';
import type { Timestamp } from '@bufbuild/protobuf/wkt';

export function when(ts: Timestamp | undefined): string {
  const ms = millis(ts);
  return ms === undefined ? '' : new Date(ms).toLocaleString(locale(), { dateStyle: 'short', timeStyle: 'short' });
}

export function Timeline({
  records,
  current,
  hasMore,
  onMore,
}: {
  records: InteractionRecord[];
  current: string;
  hasMore: boolean;
  onMore: () => void;
}) {
  return (
    <div class="timeline-wrap" data-testid="timeline" data-count={records.length}>
      {records.length === 0 ? (
        <p class="muted">{t('timelineEmpty')}</p>
      ) : (
        <ol class="timeline plain">
          {records.map((r) => (
            <li
              key={r.id}
              class={r.id === current ? 'entry current' : 'entry'}
              data-testid="timeline-item"
              data-interaction={r.id}
            >
              <div class="entry-head">
                <ChannelBadge channel={r.channel} />
                <time>{when(r.createdAt)}</time>
                <span class="tag">{r.status}</span>
                {r.disposition && <span class="tag">{r.disposition}</span>}
                {r.queue && <span class="muted">{r.queue}</span>}
                {r.agent && <span class="muted">· {r.agent}</span>}
              </div>
              {r.subject && <p class="subject">{r.subject}</p>}
              {r.wrapUpNotes && (
                <p class="note">
                  {t('notes')}: {r.wrapUpNotes}
                </p>
              )}
              {r.messages.length > 0 && (
                <ul class="messages plain">
                  {r.messages.map((m) => (
                    <li key={m.id} class={m.direction === Direction.OUTBOUND ? 'msg out' : 'msg in'}>
                      <div class="msg-head">
                        <span>{m.direction === Direction.OUTBOUND ? t('outbound') : t('inbound')}</span>
                        {m.sender && <span class="muted">{m.sender}</span>}
                        <time>{when(m.at)}</time>
                        {m.status && <span class="tag">{m.status}</span>}
                      </div>
                      {m.subject && <p class="subject">{m.subject}</p>}
                      <p class="body">{m.body}</p>
                    </li>
                  ))}
                </ul>
              )}
            </li>
          ))}
        </ol>
      )}
      {hasMore && (
        <button type="button" class="small" onClick={onMore}>
          {t('loadMore')}
        </button>
      )}
    </div>
  );
}
