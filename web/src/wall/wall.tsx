// The supervisor's wallboard: SupervisorService.WatchQueues, kept open like
// the desk's stream; queue figures with thresholds, a last-hour sparkline of
// each queue's waiting count, and agents by state with time in state (both
// kept by this page: the board carries neither).
import { useEffect } from 'preact/hooks';
import { signal } from '@preact/signals';
import { newId, supervisor } from '../api';
import { showError, showNotice } from '../alert';
import { ConnectionBadge } from '../connection';
import { duration, now } from '../clock';
import { locale, t } from '../i18n';
import { AgentPresence, type AgentStatus, type QueueBoard, type QueueFigures } from '../gen/centralino/v1/routing_pb';
import { keepStreaming, type Connection } from '../stream';
import { reasonText } from '../desk/presence';
import { Sparkline, WINDOW_MS, type Sample } from './sparkline';

/** Boards twice a second, so a change is on the wall within a second. */
const INTERVAL_MS = 500;
/** Keep one sample per this many ms (an hour is then 360 points). */
const SAMPLE_EVERY_MS = 10_000;
/** Abandon rate above which a queue warns, and is bad. */
const ABANDON_WARN_PCT = 5;
const ABANDON_BAD_PCT = 10;
/** Service level within this many points above target still warns. */
const SL_MARGIN_PCT = 5;

type Level = 'ok' | 'warn' | 'bad' | '';

const connection = signal<Connection>('connecting');
const board = signal<QueueBoard | null>(null);
const samples = signal<ReadonlyMap<string, Sample[]>>(new Map());
const since = new Map<string, { key: string; at: number }>();

function onBoard(b: QueueBoard): void {
  const at = Date.now();
  const next = new Map(samples.value);
  for (const q of b.queues) {
    const list = (next.get(q.queue) ?? []).filter((s) => s.at > at - WINDOW_MS);
    const last = list[list.length - 1];
    const value = Number(q.waiting);
    if (last && at - last.at < SAMPLE_EVERY_MS) list[list.length - 1] = { at: last.at, value: Math.max(last.value, value) };
    else list.push({ at, value });
    next.set(q.queue, list);
  }
  samples.value = next;
  for (const a of b.agents) {
    const key = `${a.presence}/${a.status}/${a.reason}`;
    if (since.get(a.agent)?.key !== key) since.set(a.agent, { key, at });
  }
  board.value = b;
}

function slLevel(q: QueueFigures): Level {
  if (q.serviceLevelPct === undefined) return '';
  if (q.serviceLevelPct < q.serviceLevelTargetPct) return 'bad';
  if (q.serviceLevelPct < q.serviceLevelTargetPct + SL_MARGIN_PCT) return 'warn';
  return 'ok';
}

function waitLevel(q: QueueFigures): Level {
  const threshold = Number(q.serviceLevelThresholdMs);
  const longest = Number(q.longestWaitMs);
  if (threshold <= 0 || q.waiting === 0n) return 'ok';
  if (longest > 2 * threshold) return 'bad';
  if (longest > threshold) return 'warn';
  return 'ok';
}

function abandonLevel(q: QueueFigures): Level {
  if (q.abandonRatePct === undefined) return '';
  if (q.abandonRatePct > ABANDON_BAD_PCT) return 'bad';
  if (q.abandonRatePct > ABANDON_WARN_PCT) return 'warn';
  return 'ok';
}

function pct(v: number | undefined): string {
  return v === undefined ? '–' : `${v.toLocaleString(locale(), { maximumFractionDigits: 1 })} %`;
}

function QueueRow({ q, clock }: { q: QueueFigures; clock: number }) {
  const wait = waitLevel(q);
  const a = q.agents;
  return (
    <tr data-testid="queue-row" data-queue={q.queue}>
      <th scope="row">{q.queue}</th>
      <td class={`num ${wait}`} data-testid="waiting" data-level={wait}>
        {q.waiting.toString()}
      </td>
      <td class={`num ${wait}`} data-testid="longest-wait" data-level={wait}>
        {duration(Number(q.longestWaitMs))}
      </td>
      <td class={`num ${slLevel(q)}`} data-testid="service-level" data-level={slLevel(q)}>
        {pct(q.serviceLevelPct)}{' '}
        <span class="target">
          ({t('target')} {pct(q.serviceLevelTargetPct)} / {duration(Number(q.serviceLevelThresholdMs))})
        </span>
      </td>
      <td class="num" data-testid="asa">
        {q.averageAnswerMs === undefined ? '–' : duration(q.averageAnswerMs)}
      </td>
      <td class={`num ${abandonLevel(q)}`} data-testid="abandon-rate" data-level={abandonLevel(q)}>
        {pct(q.abandonRatePct)}
      </td>
      <td class="num" data-testid="answered">
        {q.answered.toString()} / {q.entered.toString()}
      </td>
      <td data-testid="agents-count">
        {a ? t('agentCounts', { idle: a.idle, busy: a.busy, wrap: a.wrapUp, nr: a.notReady }) : '–'}
      </td>
      <td>
        <Sparkline samples={samples.value.get(q.queue) ?? []} now={clock} />
      </td>
    </tr>
  );
}

const STATES = ['idle', 'busy', 'wrap-up', 'not-ready', 'offline'] as const;

/** A supervisor sets an agent not ready (reason `supervisor`) or logs them out. */
async function setPresence(agent: string, presence: AgentPresence): Promise<void> {
  try {
    const r = await supervisor.setAgentPresence({
      requestId: newId(),
      agent,
      presence: { presence, reason: presence === AgentPresence.NOT_READY ? 'supervisor' : '' },
    });
    if (r.ok) showNotice(t('presenceSetFor', { agent }));
    else showError(new Error(r.message));
  } catch (e) {
    showError(e);
  }
}

function stateName(s: string): string {
  const keys = { idle: 'stIdle', busy: 'stBusy', 'wrap-up': 'stWrapUp', 'not-ready': 'stNotReady', offline: 'stOffline' } as const;
  return s in keys ? t(keys[s as keyof typeof keys]) : s;
}

function AgentsByState({ agents, clock }: { agents: AgentStatus[]; clock: number }) {
  const known = new Set<string>(STATES);
  const groups = [...STATES, ...new Set(agents.map((a) => a.status).filter((s) => !known.has(s)))];
  return (
    <section aria-labelledby="agents-title">
      <h2 id="agents-title">{t('agentsByState')}</h2>
      <div class="agents-by-state">
        {groups.map((state) => {
          const list = agents.filter((a) => a.status === state).sort((x, y) => x.agent.localeCompare(y.agent));
          return (
            <div class="card" key={state} data-testid="agent-group" data-state={state}>
              <h3>
                {stateName(state)} <span class="count">{list.length}</span>
              </h3>
              {list.length > 0 && (
                <ul class="plain">
                  {list.map((a) => (
                    <li key={a.agent} data-testid="agent-row" data-agent={a.agent} data-status={a.status}>
                      {a.agent}
                      {a.reason ? ` · ${reasonText(a.reason)}` : ''}{' '}
                      <span class="muted" data-testid="agent-time">
                        {duration(clock - (since.get(a.agent)?.at ?? clock))}
                      </span>
                      {a.presence !== AgentPresence.OFFLINE && (
                        <span class="agent-actions">
                          {a.presence !== AgentPresence.NOT_READY && (
                            <button
                              type="button"
                              class="small"
                              data-testid="agent-not-ready"
                              aria-label={`${t('setNotReady')}: ${a.agent}`}
                              onClick={() => void setPresence(a.agent, AgentPresence.NOT_READY)}
                            >
                              {t('setNotReady')}
                            </button>
                          )}
                          <button
                            type="button"
                            class="small"
                            data-testid="agent-log-out"
                            aria-label={`${t('logOut')}: ${a.agent}`}
                            onClick={() => void setPresence(a.agent, AgentPresence.OFFLINE)}
                          >
                            {t('logOut')}
                          </button>
                        </span>
                      )}
                    </li>
                  ))}
                </ul>
              )}
            </div>
          );
        })}
      </div>
    </section>
  );
}

export function Wall() {
  useEffect(
    () =>
      keepStreaming({
        open: (signal, onOpen) =>
          supervisor.watchQueues({ intervalMs: INTERVAL_MS }, { signal, timeoutMs: 0, onHeader: onOpen }),
        onMessage: onBoard,
        idleMs: 10_000,
        staleMs: 5_000,
        state: connection,
      }).stop,
    [],
  );
  const b = board.value;
  const clock = now.value;
  return (
    <div class="wall">
      <div class="wall-head">
        <h1>{t('navWall')}</h1>
        <ConnectionBadge state={connection.value} />
      </div>
      {!b ? (
        <p class="muted">{t('loading')}</p>
      ) : (
        <>
          <section class="card" aria-labelledby="queues-title">
            <h2 id="queues-title">{t('queues')}</h2>
            {b.queues.length === 0 ? (
              <p class="muted">{t('noQueues')}</p>
            ) : (
              <table class="queues">
                <thead>
                  <tr>
                    <th scope="col">{t('queue')}</th>
                    <th scope="col" class="num">{t('waiting')}</th>
                    <th scope="col" class="num">{t('longestWait')}</th>
                    <th scope="col" class="num">{t('serviceLevel')}</th>
                    <th scope="col" class="num">{t('asa')}</th>
                    <th scope="col" class="num">{t('abandonRate')}</th>
                    <th scope="col" class="num">{t('answeredEntered')}</th>
                    <th scope="col">{t('agents')}</th>
                    <th scope="col">{t('lastHour')}</th>
                  </tr>
                </thead>
                <tbody>
                  {b.queues.map((q) => (
                    <QueueRow key={q.queue} q={q} clock={clock} />
                  ))}
                </tbody>
              </table>
            )}
          </section>
          <AgentsByState agents={b.agents} clock={clock} />
        </>
      )}
    </div>
  );
}
