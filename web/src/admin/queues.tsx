// Routing queues: channels, skills, strategy, steps, service level.
import { useState } from 'preact/hooks';
import { routingAdmin } from '../api';
import { showAlert } from '../alert';
import { CHANNELS, channelName } from '../channel';
import { duration } from '../clock';
import { t } from '../i18n';
import type { Channel } from '../gen/centralino/v1/interaction_pb';
import type { QueueDefinition } from '../gen/centralino/v1/routing_pb';
import { change, DeleteButton, formatSkills, formatStep, FormatError, parseSkills, parseSteps, useList } from './common';

const STRATEGIES = ['longest-idle', 'least-occupied', 'round-robin', 'best-proficiency'];

interface Form {
  name: string;
  channels: Channel[];
  skills: string;
  basePriority: string;
  strategy: string;
  slTarget: string;
  slThresholdSecs: string;
  preferredSecs: string;
  steps: string;
}

const blank: Form = {
  name: '',
  channels: [],
  skills: '',
  basePriority: '0',
  strategy: STRATEGIES[0]!,
  slTarget: '',
  slThresholdSecs: '',
  preferredSecs: '0',
  steps: '',
};

function toForm(q: QueueDefinition): Form {
  return {
    name: q.name,
    channels: [...q.channels],
    skills: formatSkills(q.skills),
    basePriority: String(q.basePriority),
    strategy: q.strategy || STRATEGIES[0]!,
    slTarget: q.serviceLevelTargetPct === undefined ? '' : String(q.serviceLevelTargetPct),
    slThresholdSecs: q.serviceLevelThresholdMs === undefined ? '' : String(Number(q.serviceLevelThresholdMs) / 1000),
    preferredSecs: String(Number(q.preferredAgentMs) / 1000),
    steps: q.steps.map(formatStep).join('\n'),
  };
}

function secsToMs(s: string): bigint {
  return BigInt(Math.round(Number(s) * 1000));
}

export function Queues() {
  const { items, reload } = useList(async () => (await routingAdmin.listQueues({})).queues);
  const [f, setF] = useState<Form>(blank);
  const set = (patch: Partial<Form>) => setF((x) => ({ ...x, ...patch }));

  async function submit(e: Event) {
    e.preventDefault();
    let def;
    try {
      def = {
        name: f.name.trim(),
        channels: f.channels,
        skills: parseSkills(f.skills),
        basePriority: Number(f.basePriority) || 0,
        strategy: f.strategy,
        serviceLevelTargetPct: f.slTarget === '' ? undefined : Number(f.slTarget),
        serviceLevelThresholdMs: f.slThresholdSecs === '' ? undefined : secsToMs(f.slThresholdSecs),
        preferredAgentMs: secsToMs(f.preferredSecs || '0'),
        steps: parseSteps(f.steps),
      };
    } catch (err) {
      if (err instanceof FormatError) return showAlert(err.message);
      throw err;
    }
    if (await change(() => routingAdmin.upsertQueue(def), t('saved', { name: def.name }))) {
      setF(blank);
      reload();
    }
  }

  return (
    <div class="admin-grid">
      <section class="card" aria-labelledby="queues-admin-title">
        <h2 id="queues-admin-title">{t('queues')}</h2>
        <table>
          <thead>
            <tr>
              <th scope="col">{t('name')}</th>
              <th scope="col">{t('channels')}</th>
              <th scope="col">{t('skills')}</th>
              <th scope="col">{t('strategy')}</th>
              <th scope="col">{t('serviceLevel')}</th>
              <th scope="col">{t('steps')}</th>
              <th scope="col">{t('actions')}</th>
            </tr>
          </thead>
          <tbody>
            {items.map((q) => (
              <tr key={q.name} data-testid="queue-def" data-queue={q.name}>
                <td>{q.name}</td>
                <td>{q.channels.map(channelName).join(', ')}</td>
                <td>{formatSkills(q.skills)}</td>
                <td>{q.strategy || STRATEGIES[0]}</td>
                <td>
                  {q.serviceLevelTargetPct ?? 80} % / {duration(Number(q.serviceLevelThresholdMs ?? 20000n))}
                </td>
                <td class="pre">{q.steps.map(formatStep).join('\n')}</td>
                <td>
                  <button type="button" class="small" onClick={() => setF(toForm(q))}>
                    {t('edit')}
                  </button>{' '}
                  <DeleteButton
                    name={q.name}
                    onDelete={() =>
                      void change(() => routingAdmin.deleteQueue({ name: q.name }), t('deleted', { name: q.name })).then(
                        (ok) => ok && reload(),
                      )
                    }
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <form class="card form-grid" onSubmit={submit} aria-labelledby="queue-form-title">
        <h2 id="queue-form-title" class="full">
          {t('queueForm')}
        </h2>
        <label for="q-name">{t('name')}</label>
        <input id="q-name" data-testid="queue-name" required value={f.name} onInput={(e) => set({ name: e.currentTarget.value })} />
        <fieldset class="full">
          <legend>{t('channels')}</legend>
          {CHANNELS.map((c) => (
            <label class="check" key={c}>
              <input
                type="checkbox"
                checked={f.channels.includes(c)}
                onChange={(e) =>
                  set({ channels: e.currentTarget.checked ? [...f.channels, c] : f.channels.filter((x) => x !== c) })
                }
              />{' '}
              {channelName(c)}{' '}
            </label>
          ))}
        </fieldset>
        <label for="q-skills">{t('skills')}</label>
        <input id="q-skills" placeholder="italiano:3, vendite:2" value={f.skills} onInput={(e) => set({ skills: e.currentTarget.value })} />
        <label for="q-priority">{t('basePriority')}</label>
        <input id="q-priority" type="number" value={f.basePriority} onInput={(e) => set({ basePriority: e.currentTarget.value })} />
        <label for="q-strategy">{t('strategy')}</label>
        <select id="q-strategy" value={f.strategy} onChange={(e) => set({ strategy: e.currentTarget.value })}>
          {STRATEGIES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <label for="q-sl-target">{t('slTarget')}</label>
        <input id="q-sl-target" type="number" min={0} max={100} step="any" placeholder="80" value={f.slTarget} onInput={(e) => set({ slTarget: e.currentTarget.value })} />
        <label for="q-sl-threshold">{t('slThreshold')}</label>
        <input id="q-sl-threshold" type="number" min={0} step="any" placeholder="20" value={f.slThresholdSecs} onInput={(e) => set({ slThresholdSecs: e.currentTarget.value })} />
        <label for="q-preferred">{t('preferredAgent')}</label>
        <input id="q-preferred" type="number" min={0} step="any" value={f.preferredSecs} onInput={(e) => set({ preferredSecs: e.currentTarget.value })} />
        <label for="q-steps" class="full">
          {t('steps')}
        </label>
        <textarea id="q-steps" class="full" rows={4} aria-describedby="q-steps-help" value={f.steps} onInput={(e) => set({ steps: e.currentTarget.value })} />
        <p id="q-steps-help" class="full muted">
          {t('stepsHelp')}
        </p>
        <button type="submit" class="primary full" data-testid="save-queue">
          {t('save')}
        </button>
      </form>
    </div>
  );
}
