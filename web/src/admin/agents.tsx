// Routing agents: skills and capacity per channel.
import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { routingAdmin } from '../api';
import { showAlert } from '../alert';
import { CHANNELS, channelName } from '../channel';
import { t } from '../i18n';
import type { Channel } from '../gen/centralino/v1/interaction_pb';
import type { AgentDefinition } from '../gen/centralino/v1/routing_pb';
import { change, DeleteButton, formatSkills, FormatError, parseSkills, useList } from './common';

interface Form {
  name: string;
  displayName: string;
  skills: string;
  /** Empty: the channel's default capacity. */
  capacity: Partial<Record<Channel, string>>;
}

const blank: Form = { name: '', displayName: '', skills: '', capacity: {} };

function toForm(a: AgentDefinition): Form {
  return {
    name: a.name,
    displayName: a.displayName,
    skills: formatSkills(a.skills),
    capacity: Object.fromEntries(a.capacity.map((c) => [c.channel, String(c.capacity)])),
  };
}

export function Agents() {
  const { items, reload } = useList(async () => (await routingAdmin.listAgents({})).agents);
  const [f, setF] = useState<Form>(blank);
  const set = (patch: Partial<Form>) => setF((x) => ({ ...x, ...patch }));

  async function submit(e: Event) {
    e.preventDefault();
    let skills;
    try {
      skills = parseSkills(f.skills);
    } catch (err) {
      if (err instanceof FormatError) return showAlert(err.message);
      throw err;
    }
    const capacity = CHANNELS.filter((c) => (f.capacity[c] ?? '') !== '').map((c) => ({
      channel: c,
      capacity: Number(f.capacity[c]),
    }));
    const def = { name: f.name.trim(), displayName: f.displayName.trim(), skills, capacity };
    if (await change(() => routingAdmin.upsertAgent(def), t('saved', { name: def.name }))) {
      setF(blank);
      reload();
    }
  }

  return (
    <div class="admin-grid">
      <section class="card" aria-labelledby="agents-admin-title">
        <h2 id="agents-admin-title">{t('agents')}</h2>
        <table>
          <thead>
            <tr>
              <th scope="col">{t('name')}</th>
              <th scope="col">{t('displayName')}</th>
              <th scope="col">{t('skills')}</th>
              <th scope="col">{t('capacity')}</th>
              <th scope="col">{t('actions')}</th>
            </tr>
          </thead>
          <tbody>
            {items.map((a) => (
              <tr key={a.name} data-testid="agent-def" data-agent={a.name}>
                <td>{a.name}</td>
                <td>{a.displayName}</td>
                <td>{formatSkills(a.skills)}</td>
                <td>{a.capacity.map((c) => `${channelName(c.channel)} ${c.capacity}`).join(', ')}</td>
                <td>
                  <button type="button" class="small" onClick={() => setF(toForm(a))}>
                    {t('edit')}
                  </button>{' '}
                  <DeleteButton
                    name={a.name}
                    onDelete={() =>
                      void change(() => routingAdmin.deleteAgent({ name: a.name }), t('deleted', { name: a.name })).then(
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
      <form class="card form-grid" onSubmit={submit} aria-labelledby="agent-form-title">
        <h2 id="agent-form-title" class="full">
          {t('agentForm')}
        </h2>
        <label for="ag-name">{t('name')}</label>
        <input id="ag-name" required value={f.name} onInput={(e) => set({ name: e.currentTarget.value })} />
        <label for="ag-display">{t('displayName')}</label>
        <input id="ag-display" value={f.displayName} onInput={(e) => set({ displayName: e.currentTarget.value })} />
        <label for="ag-skills">{t('skills')}</label>
        <input id="ag-skills" placeholder="italiano:3, vendite:2" value={f.skills} onInput={(e) => set({ skills: e.currentTarget.value })} />
        <fieldset class="full form-grid">
          <legend>{t('capacityHelp')}</legend>
          {CHANNELS.map((c) => (
            <Fragment key={c}>
              <label for={`ag-cap-${c}`}>
                {channelName(c)}
              </label>
              <input
                id={`ag-cap-${c}`}
                type="number"
                min={0}
                value={f.capacity[c] ?? ''}
                onInput={(e) => set({ capacity: { ...f.capacity, [c]: e.currentTarget.value } })}
              />
            </Fragment>
          ))}
        </fieldset>
        <button type="submit" class="primary full" data-testid="save-agent">
          {t('save')}
        </button>
      </form>
    </div>
  );
}
