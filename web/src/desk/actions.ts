// The agent's commands: one `Act` each, with a fresh request id.
import { Code } from '@connectrpc/connect';
import { agentDesk, newId } from '../api';
import { showAlert, showError } from '../alert';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { AgentPresence, type AgentRequestSchema } from '../gen/centralino/v1/routing_pb';
import { dropHeld } from './state';

type Action = MessageInitShape<typeof AgentRequestSchema>['action'];

/** Runs one command; true when the server carried it out. */
async function act(action: Action): Promise<boolean> {
  try {
    const r = await agentDesk.act({ requestId: newId(), action });
    if (!r.ok) {
      showAlert(r.message || Code[r.code] || String(r.code));
      return false;
    }
    return true;
  } catch (e) {
    showError(e);
    return false;
  }
}

export const REASONS = ['break', 'lunch', 'training', 'meeting', 'after-call', 'coaching', 'admin'] as const;

export function setAvailable(): Promise<boolean> {
  return act({ case: 'setPresence', value: { presence: AgentPresence.AVAILABLE, reason: '' } });
}

export function setNotReady(reason: string): Promise<boolean> {
  return act({ case: 'setPresence', value: { presence: AgentPresence.NOT_READY, reason } });
}

export function setOffline(): Promise<boolean> {
  return act({ case: 'setPresence', value: { presence: AgentPresence.OFFLINE, reason: '' } });
}

export function accept(interactionId: string): Promise<boolean> {
  return act({ case: 'accept', value: { interactionId } });
}

export function reject(interactionId: string): Promise<boolean> {
  return act({ case: 'reject', value: { interactionId } });
}

export async function complete(interactionId: string, disposition: string, wrapUpNotes: string): Promise<boolean> {
  const ok = await act({ case: 'complete', value: { interactionId, disposition, wrapUpNotes } });
  if (ok) dropHeld(interactionId);
  return ok;
}

export function endWrapUp(): Promise<boolean> {
  return act({ case: 'endWrapUp', value: {} });
}

export async function transfer(interactionId: string, queue: string): Promise<boolean> {
  const ok = await act({ case: 'transfer', value: { interactionId, queue } });
  if (ok) dropHeld(interactionId);
  return ok;
}
