// The gRPC-web transport and one client per service. Cookies are same-origin,
// so the browser sends the session cookie and the Origin header by itself.
import { Code, ConnectError, createClient, type Interceptor } from '@connectrpc/connect';
import { createGrpcWebTransport } from '@connectrpc/connect-web';
import { ConversationService } from './gen/centralino/v1/conversation_pb';
import { DeskService } from './gen/centralino/v1/desk_pb';
import { HistoryService } from './gen/centralino/v1/history_pb';
import { RoutingAdminService, SupervisorService } from './gen/centralino/v1/routing_pb';
import { AgentDeskService, UserAdminService, WebSessionService } from './gen/centralino/v1/web_pb';

let sessionEnded: () => void = () => {};

/** What to do when a call finds the session gone (set by the session module). */
export function onSessionEnded(handler: () => void): void {
  sessionEnded = handler;
}

// Calls that answer UNAUTHENTICATED as part of their meaning, not because a
// session ended.
const sessionProbes = new Set(['Login', 'Me']);

/** Tells the session module the session is gone (a stream's end, a call's answer). */
export function reportSessionEnded(): void {
  sessionEnded();
}

const unauthenticated: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (e) {
    if (isCode(e, Code.Unauthenticated) && !sessionProbes.has(req.method.name)) sessionEnded();
    throw e;
  }
};

const transport = createGrpcWebTransport({
  baseUrl: location.origin,
  interceptors: [unauthenticated],
});

export const sessionClient = createClient(WebSessionService, transport);
export const userAdmin = createClient(UserAdminService, transport);
export const agentDesk = createClient(AgentDeskService, transport);
export const customerHistory = createClient(HistoryService, transport);
export const conversation = createClient(ConversationService, transport);
export const desk = createClient(DeskService, transport);
export const supervisor = createClient(SupervisorService, transport);
export const routingAdmin = createClient(RoutingAdminService, transport);

export function isCode(e: unknown, code: Code): boolean {
  return e instanceof ConnectError && e.code === code;
}

/** The server's message for a person (without the code prefix). */
export function errorMessage(e: unknown): string {
  if (e instanceof ConnectError) return e.rawMessage || Code[e.code];
  if (e instanceof Error) return e.message;
  return String(e);
}

/** A new UUID (v4); `crypto.randomUUID` exists only in secure contexts. */
export function newId(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
