// Shared by the admin screens: loading a list, running a change, parsing the
// small text formats for skills and routing steps.
import { useEffect, useState } from 'preact/hooks';
import { showError, showNotice } from '../alert';
import { t } from '../i18n';
import type { RoutingStep, SkillLevel } from '../gen/centralino/v1/routing_pb';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { RoutingStepSchema, SkillLevelSchema } from '../gen/centralino/v1/routing_pb';

/** Loads a list once and on `reload`. */
export function useList<T>(load: () => Promise<T[]>): { items: T[]; reload: () => void } {
  const [items, setItems] = useState<T[]>([]);
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (list) => {
        if (live) setItems(list);
      },
      (e: unknown) => {
        if (live) showError(e);
      },
    );
    return () => {
      live = false;
    };
  }, [generation]);
  return { items, reload: () => setGeneration((g) => g + 1) };
}

/**
 * Runs a change; on success shows `done` and returns true. A refusal shows
 * the server's message (e.g. FAILED_PRECONDITION for a definition the
 * configuration file owns).
 */
export async function change(run: () => Promise<unknown>, done: string): Promise<boolean> {
  try {
    await run();
    showNotice(done);
    return true;
  } catch (e) {
    showError(e);
    return false;
  }
}

export class FormatError extends Error {}

/** `italiano:3, vendite:2` → skill levels (level 1 when omitted). */
export function parseSkills(text: string): MessageInitShape<typeof SkillLevelSchema>[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((part) => {
      const [skill = '', level = '1'] = part.split(':').map((x) => x.trim());
      const n = Number(level);
      if (!skill || !Number.isInteger(n) || n < 1 || n > 5) throw new FormatError(t('badSkill', { part }));
      return { skill, level: n };
    });
}

export function formatSkills(skills: SkillLevel[]): string {
  return skills.map((s) => `${s.skill}:${s.level}`).join(', ');
}

/**
 * One step a line: `<seconds> relax <skills>`, `<seconds> overflow <queue>`
 * or `<seconds> close <outcome>`.
 */
export function parseSteps(text: string): MessageInitShape<typeof RoutingStepSchema>[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((line) => {
      const m = /^(\d+)\s+(relax|overflow|close)\s+(.+)$/.exec(line);
      if (!m) throw new FormatError(t('badStep', { line }));
      const afterMs = BigInt(m[1]!) * 1000n;
      const arg = m[3]!.trim();
      switch (m[2]) {
        case 'relax':
          return { afterMs, action: { case: 'relax', value: { skills: parseSkills(arg) } } };
        case 'overflow':
          return { afterMs, action: { case: 'overflowTo', value: arg } };
        default:
          return { afterMs, action: { case: 'closeWith', value: arg } };
      }
    });
}

export function formatStep(s: RoutingStep): string {
  const secs = (s.afterMs / 1000n).toString();
  switch (s.action.case) {
    case 'relax':
      return `${secs} relax ${formatSkills(s.action.value.skills)}`;
    case 'overflowTo':
      return `${secs} overflow ${s.action.value}`;
    case 'closeWith':
      return `${secs} close ${s.action.value}`;
    default:
      return `${secs}`;
  }
}

/** A delete button that asks once more before acting. */
export function DeleteButton({ name, onDelete }: { name: string; onDelete: () => void }) {
  const [armed, setArmed] = useState(false);
  return armed ? (
    <>
      <button type="button" class="danger small" data-testid="delete-confirm" onClick={onDelete}>
        {t('deleteConfirm', { name })}
      </button>{' '}
      <button type="button" class="small" onClick={() => setArmed(false)}>
        {t('cancel')}
      </button>
    </>
  ) : (
    <button type="button" class="small" data-testid="delete" onClick={() => setArmed(true)}>
      {t('delete')}
    </button>
  );
}
