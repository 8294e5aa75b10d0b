// Routing skills (RoutingAdminService).
import { useState } from 'preact/hooks';
import { routingAdmin } from '../api';
import { t } from '../i18n';
import { change, DeleteButton, useList } from './common';

export function Skills() {
  const { items, reload } = useList(async () => (await routingAdmin.listSkills({})).skills);
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  async function submit(e: Event) {
    e.preventDefault();
    if (await change(() => routingAdmin.upsertSkill({ name: name.trim(), description }), t('saved', { name }))) {
      setName('');
      setDescription('');
      reload();
    }
  }
  return (
    <div class="admin-grid">
      <section class="card" aria-labelledby="skills-title">
        <h2 id="skills-title">{t('skills')}</h2>
        <table>
          <thead>
            <tr>
              <th scope="col">{t('name')}</th>
              <th scope="col">{t('description')}</th>
              <th scope="col">{t('actions')}</th>
            </tr>
          </thead>
          <tbody>
            {items.map((s) => (
              <tr key={s.name} data-testid="skill-row" data-skill={s.name}>
                <td>{s.name}</td>
                <td>{s.description}</td>
                <td>
                  <button
                    type="button"
                    class="small"
                    onClick={() => {
                      setName(s.name);
                      setDescription(s.description);
                    }}
                  >
                    {t('edit')}
                  </button>{' '}
                  <DeleteButton
                    name={s.name}
                    onDelete={() =>
                      void change(() => routingAdmin.deleteSkill({ name: s.name }), t('deleted', { name: s.name })).then(
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
      <form class="card form-grid" onSubmit={submit} aria-labelledby="skill-form-title">
        <h2 id="skill-form-title" class="full">
          {t('skillForm')}
        </h2>
        <label for="sk-name">{t('name')}</label>
        <input id="sk-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <label for="sk-description">{t('description')}</label>
        <input id="sk-description" value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        <button type="submit" class="primary full" data-testid="save-skill">
          {t('save')}
        </button>
      </form>
    </div>
  );
}
