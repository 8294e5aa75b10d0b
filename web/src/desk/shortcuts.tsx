// Keyboard shortcuts for every desk action, and the cheat sheet listing them.
import { useEffect, useRef } from 'preact/hooks';
import { signal } from '@preact/signals';
import { t } from '../i18n';
import { enableSound } from '../ring';
import { accept, complete, endWrapUp, reject, setAvailable, setNotReady, setOffline } from './actions';
import { draftFor, dropDraft } from './drafts';
import { reason } from './presence';
import { selected, selectedId, workItems } from './state';

export const cheatSheetOpen = signal(false);

type ShortcutKey = Parameters<typeof t>[0];

const SHORTCUTS: { key: string; label: ShortcutKey; run: () => void }[] = [
  { key: 'a', label: 'scAccept', run: () => void withOffer(accept) },
  { key: 'r', label: 'scReject', run: () => void withOffer(reject) },
  { key: 'c', label: 'scComplete', run: () => void completeSelected() },
  { key: 'v', label: 'scAvailable', run: () => void setAvailable() },
  { key: 'n', label: 'scNotReady', run: () => void setNotReady(reason.value) },
  { key: 'o', label: 'scOffline', run: () => void setOffline() },
  { key: 'e', label: 'scEndWrapUp', run: () => void endWrapUp() },
  { key: 'j', label: 'scNext', run: () => move(1) },
  { key: 'k', label: 'scPrevious', run: () => move(-1) },
  { key: 'w', label: 'scWrite', run: () => focus('reply-body', 'notes') },
  { key: 's', label: 'scSound', run: () => void enableSound() },
  { key: '?', label: 'scHelp', run: () => (cheatSheetOpen.value = !cheatSheetOpen.value) },
];

/** The selected offer, else the first. */
function withOffer(run: (id: string) => Promise<boolean>): Promise<boolean> | undefined {
  const s = selected.value;
  const id = s?.kind === 'offer' ? s.id : workItems.value.find((w) => w.kind === 'offer')?.id;
  return id ? run(id) : undefined;
}

async function completeSelected(): Promise<void> {
  const s = selected.value;
  if (s?.kind !== 'held') return;
  const d = draftFor(s.id);
  if (await complete(s.id, d.disposition.value, d.notes.value)) dropDraft(s.id);
}

function move(step: number): void {
  const items = workItems.value;
  if (items.length === 0) return;
  const i = items.findIndex((w) => w.id === selected.value?.id);
  const next = items[(i + step + items.length) % items.length]!;
  selectedId.value = next.id;
  document.querySelector<HTMLElement>(`[data-interaction="${next.id}"] [data-testid="select"]`)?.focus();
}

function focus(...ids: string[]): void {
  for (const id of ids) {
    const el = document.getElementById(id);
    if (el) {
      el.focus();
      return;
    }
  }
}

function typing(target: EventTarget | null): boolean {
  if (!(target instanceof HTMLElement)) return false;
  return target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName);
}

/** Listens for the shortcuts while the desk is shown. */
export function useShortcuts(): void {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.ctrlKey || e.metaKey || e.altKey || e.repeat || typing(e.target)) return;
      if (cheatSheetOpen.value && e.key !== '?') return;
      const s = SHORTCUTS.find((x) => x.key === e.key);
      if (!s) return;
      e.preventDefault();
      s.run();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, []);
}

/** A modal dialog (native: focus stays inside, Esc closes). */
export function CheatSheet() {
  const ref = useRef<HTMLDialogElement>(null);
  const open = cheatSheetOpen.value;
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog
      ref={ref}
      class="cheatsheet"
      aria-labelledby="cheatsheet-title"
      data-testid="cheatsheet"
      onClose={() => (cheatSheetOpen.value = false)}
    >
      <h2 id="cheatsheet-title">{t('shortcuts')}</h2>
      <table>
        <thead>
          <tr>
            <th scope="col">{t('key')}</th>
            <th scope="col">{t('action')}</th>
          </tr>
        </thead>
        <tbody>
          {SHORTCUTS.map((s) => (
            <tr key={s.key}>
              <td>
                <kbd>{s.key}</kbd>
              </td>
              <td>{t(s.label)}</td>
            </tr>
          ))}
          <tr>
            <td>
              <kbd>Esc</kbd>
            </td>
            <td>{t('scClose')}</td>
          </tr>
        </tbody>
      </table>
      <p class="muted">{t('shortcutsNote')}</p>
      <button type="button" onClick={() => (cheatSheetOpen.value = false)}>
        {t('close')}
      </button>
    </dialog>
  );
}
