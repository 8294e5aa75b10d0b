"""An integrator and an agent answering customers and creating work, from Python
grpcio: ConversationService (replies to an email and an SMS conversation, a
notification, validation and consent refusals, the status streamed until
sent) and InteractionService (a task an agent session is offered, closed,
on the customer's timeline). Exits non-zero on the first failed check. Run by
the Rust test suite (crates/centralino/tests/it/python.rs), which starts
`up` with a mailbox on Dovecot, SMTP to aiosmtpd and SMPP to the SMSC
simulator, and checks afterwards what reached them:

    python3 tests/python/conversation_client.py --addr 127.0.0.1:50051 \
        --integrator-token ... --agent-token ... --email lucia@example.test \
        --phone +393331234567 --queue support --mode embedded
"""

import argparse
import queue
import threading
import time
import uuid

import grpc
from common import PASSED, bearer, build, check, code_of, eventually


class AgentSession:
    """An agent's desktop: a bidirectional AgentService.Session stream, its
    updates collected by a thread."""

    def __init__(self, routing, routing_grpc, channel, token):
        self.pb = routing
        self.requests = queue.Queue()
        self.updates = queue.Queue()
        stub = routing_grpc.AgentServiceStub(channel)

        def outgoing():
            while True:
                r = self.requests.get()
                if r is None:
                    return
                yield r

        self.call = stub.Session(outgoing(), metadata=token)

        def read():
            try:
                for u in self.call:
                    self.updates.put(u)
            except grpc.RpcError:
                pass

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()

    def send(self, **action):
        self.requests.put(self.pb.AgentRequest(request_id=str(uuid.uuid4()), **action))

    def wait_for(self, what, match, timeout=30.0):
        deadline = time.monotonic() + timeout
        others = []
        while time.monotonic() < deadline:
            try:
                u = self.updates.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if match(u):
                return u
            others.append(str(u).replace("\n", " ")[:300])
        check(what, False, f"not within {timeout} s; the session got: {others}")

    def close(self):
        self.requests.put(None)
        self.call.cancel()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--integrator-token", required=True)
    ap.add_argument("--agent-token", required=True)
    ap.add_argument("--email", required=True, help="the customer who wrote to the mailbox")
    ap.add_argument("--phone", required=True, help="the customer who sent an SMS")
    ap.add_argument("--queue", required=True, help="a queue that takes tasks, worked by the agent")
    ap.add_argument("--mode", required=True)
    args = ap.parse_args()

    (interaction, history, history_grpc, conversation, conversation_grpc, routing,
     routing_grpc) = build("interaction_pb2", "history_pb2", "history_pb2_grpc", "conversation_pb2",
                           "conversation_pb2_grpc", "routing_pb2", "routing_pb2_grpc")
    channel = grpc.insecure_channel(args.addr)
    grpc.channel_ready_future(channel).result(timeout=10)
    hist = history_grpc.HistoryServiceStub(channel)
    conv = conversation_grpc.ConversationServiceStub(channel)
    tasks = conversation_grpc.InteractionServiceStub(channel)
    integrator, agent = bearer(args.integrator_token), bearer(args.agent_token)
    Kind = interaction.CustomerIdentifier.Kind
    EMAIL, SMS = interaction.CHANNEL_EMAIL, interaction.CHANNEL_SMS

    def conversation_of(kind, value, channel_):
        def find():
            found = hist.FindCustomers(history.FindCustomersRequest(
                identifier=interaction.CustomerIdentifier(kind=kind, value=value)),
                metadata=integrator, timeout=5).customers
            if not found:
                return None
            t = hist.ListTimeline(history.ListTimelineRequest(customer_id=found[0].id),
                                  metadata=integrator, timeout=5).interactions
            return next(((found[0].id, i) for i in t if i.channel == channel_), None)
        return eventually(f"the customer's {channel_} conversation in history", find)

    def send(token, validate_only=False, **fields):
        return conv.SendMessage(conversation.SendMessageRequest(
            message=interaction.SendMessage(**fields), validate_only=validate_only),
            metadata=token, timeout=10)

    def watch_until(message_id, final):
        seen = []
        for m in conv.WatchMessage(conversation.GetMessageRequest(message_id=message_id),
                                   metadata=integrator, timeout=60):
            seen.append(m.status)
            if m.status in final:
                return m, seen
        return None, seen

    email_customer, email_conv = conversation_of(Kind.KIND_EMAIL, args.email, EMAIL)
    sms_customer, sms_conv = conversation_of(Kind.KIND_PHONE, args.phone, SMS)

    # --- Validation, before anything is sent ---------------------------------
    for what, fields, code in [
        ("a voice message is refused", dict(channel=interaction.CHANNEL_VOICE), grpc.StatusCode.INVALID_ARGUMENT),
        ("a message id that is not a UUID is refused", dict(message_id="nope"), grpc.StatusCode.INVALID_ARGUMENT),
        ("an empty body is refused", dict(body="  "), grpc.StatusCode.INVALID_ARGUMENT),
        ("an email to a bare address is refused", dict(interaction_id="", recipient=args.email),
         grpc.StatusCode.INVALID_ARGUMENT),
        ("an unknown conversation is NOT_FOUND", dict(interaction_id=str(uuid.uuid4())), grpc.StatusCode.NOT_FOUND),
    ]:
        base = dict(message_id=str(uuid.uuid4()), interaction_id=email_conv.id, channel=EMAIL, body="Salve")
        base.update(fields)
        got, detail = code_of(lambda: send(integrator, **base))
        check(f"send: {what}", got == code, f"{got} {detail}")
    got, detail = code_of(lambda: send(integrator, message_id=str(uuid.uuid4()), interaction_id=sms_conv.id,
                                       channel=EMAIL, body="Salve"))
    check("send: a reply on another channel than its conversation's is FAILED_PRECONDITION",
          got == grpc.StatusCode.FAILED_PRECONDITION and "sms" in detail, f"{got} {detail}")
    got, detail = code_of(lambda: send(agent, message_id=str(uuid.uuid4()), interaction_id=sms_conv.id,
                                       channel=SMS, body="Salve"))
    check("send: an agent cannot answer a conversation not assigned to them",
          got == grpc.StatusCode.PERMISSION_DENIED, f"{got} {detail}")
    got, detail = code_of(lambda: send(agent, message_id=str(uuid.uuid4()), recipient=args.phone,
                                       channel=SMS, body="Salve", purpose="transactional"))
    check("send: an agent cannot send notifications", got == grpc.StatusCode.PERMISSION_DENIED, f"{got} {detail}")

    # --- The SMS reply: encoding and segments said before sending -------------
    body = "Gentile cliente, il suo pacco è in consegna domani tra le 9 e le 13 📦 Grazie per la pazienza!"
    sms_id = str(uuid.uuid4())
    plan = send(integrator, validate_only=True, message_id=sms_id, interaction_id=sms_conv.id,
                channel=SMS, body=body)
    check("sms: validate_only says UCS-2 in 2 segments (an emoji)",
          plan.encoding == "ucs2" and plan.segments == 2 and plan.status == "", str(plan))
    got, _ = code_of(lambda: conv.GetMessage(conversation.GetMessageRequest(message_id=sms_id),
                                              metadata=integrator, timeout=5))
    check("sms: validate_only stored nothing", got == grpc.StatusCode.NOT_FOUND, str(got))
    sent = send(integrator, message_id=sms_id, interaction_id=sms_conv.id, channel=SMS, body=body)
    check("sms: queued with its encoding", sent.status == "queued" and sent.segments == 2, str(sent))
    again = send(integrator, message_id=sms_id, interaction_id=sms_conv.id, channel=SMS, body=body)
    check("sms: the same message again answers its state, sending nothing more",
          again.message_id == sms_id and again.segments == 2, str(again))
    final, seen = watch_until(sms_id, ("sent", "delivered", "failed"))
    check("sms: WatchMessage streams it to sent", final is not None and final.status in ("sent", "delivered"),
          f"{seen} {final}")

    # --- The email reply, by the agent who accepted it ------------------------
    session = AgentSession(routing, routing_grpc, channel, agent)
    session.wait_for("agent: the session's snapshot", lambda u: u.HasField("snapshot"))
    session.send(set_presence=routing.SetPresence(presence=routing.AGENT_PRESENCE_AVAILABLE))
    session.wait_for("agent: offered the email conversation",
                     lambda u: u.HasField("offer") and u.offer.interaction_id == email_conv.id)
    session.send(accept=routing.OfferAnswer(interaction_id=email_conv.id))
    session.wait_for("agent: the email conversation assigned",
                     lambda u: u.HasField("assigned") and u.assigned.interaction_id == email_conv.id)
    email_id = str(uuid.uuid4())
    reply = dict(message_id=email_id, interaction_id=email_conv.id, channel=EMAIL,
                 body="Gentile Lucia, abbiamo ricevuto la sua richiesta di disdetta.")

    def agent_reply():
        # History hears of the assignment from routing's event, a moment later.
        try:
            return send(agent, **reply)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.PERMISSION_DENIED:
                raise
            return None
    sent = eventually("email: the agent answers the conversation assigned to them", agent_reply)
    check("email: queued with the conversation's subject", sent.status == "queued"
          and sent.subject == "Re: Contratto", str(sent))
    again = send(agent, **reply)
    check("email: the same message again answers its state", again.message_id == email_id, str(again))
    got, detail = code_of(lambda: send(integrator, **dict(reply, body="Another text")))
    check("email: another message under the same id is ALREADY_EXISTS",
          got == grpc.StatusCode.ALREADY_EXISTS, f"{got} {detail}")
    got, detail = code_of(lambda: send(agent, message_id=str(uuid.uuid4()), interaction_id=email_conv.id,
                                       channel=EMAIL, body="Offerta!", purpose="transactional"))
    check("email: an agent's message with a purpose is refused (it would pass an opt-out)",
          got == grpc.StatusCode.PERMISSION_DENIED, f"{got} {detail}")
    final, seen = watch_until(email_id, ("sent", "failed"))
    check("email: WatchMessage streams it to sent", final is not None and final.status == "sent", f"{seen} {final}")
    got = conv.GetMessage(conversation.GetMessageRequest(message_id=email_id), metadata=agent, timeout=5)
    check("email: GetMessage reads the same state", got.status == "sent", str(got))

    # --- Consent -------------------------------------------------------------
    hist.RecordConsent(history.RecordConsentRequest(
        request_id=str(uuid.uuid4()), customer_id=sms_customer, channel=SMS, purpose="marketing",
        state=history.CONSENT_STATE_REVOKED, source="py-test", note="asked by phone"),
        metadata=integrator, timeout=5)
    got, detail = code_of(lambda: send(integrator, message_id=str(uuid.uuid4()), recipient=args.phone,
                                       channel=SMS, body="Saldi!", purpose="marketing"))
    check("consent: a marketing SMS after the opt-out is FAILED_PRECONDITION",
          got == grpc.StatusCode.FAILED_PRECONDITION and "consent" in detail, f"{got} {detail}")
    notice = send(integrator, message_id=str(uuid.uuid4()), recipient=args.phone, channel=SMS,
                  body="Il suo codice: 123456", purpose="transactional")
    check("consent: a transactional notification goes, opening its own interaction",
          notice.status == "queued" and notice.interaction_id and notice.interaction_id != sms_conv.id
          and notice.recipient == args.phone, str(notice))
    final, seen = watch_until(notice.message_id, ("sent", "delivered", "failed"))
    check("notification: sent", final is not None and final.status in ("sent", "delivered"), f"{seen} {final}")
    got, detail = code_of(lambda: send(integrator, message_id=str(uuid.uuid4()),
                                       interaction_id=notice.interaction_id, channel=SMS, body="Salve"))
    check("notification: not a conversation to reply in", got == grpc.StatusCode.FAILED_PRECONDITION,
          f"{got} {detail}")

    # --- A task, offered to an agent session ---------------------------------
    create = conversation.CreateTaskRequest(
        request_id=str(uuid.uuid4()), title="Richiamare per la disdetta",
        description="La cliente chiede di essere richiamata dopo le 17.", queue=args.queue, priority=80,
        identifiers=[interaction.CustomerIdentifier(kind=Kind.KIND_EMAIL, value=args.email)],
        attributes={"crm_case": "C-1042"})
    create.due_at.GetCurrentTime()
    create.due_at.seconds += 3600
    got, detail = code_of(lambda: tasks.CreateTask(create, metadata=agent, timeout=5))
    check("task: an agent cannot create one", got == grpc.StatusCode.PERMISSION_DENIED, f"{got} {detail}")
    bad = conversation.CreateTaskRequest(request_id=str(uuid.uuid4()), title="", queue=args.queue)
    got, detail = code_of(lambda: tasks.CreateTask(bad, metadata=integrator, timeout=5))
    check("task: one without a title is INVALID_ARGUMENT naming it",
          got == grpc.StatusCode.INVALID_ARGUMENT and "title" in detail, f"{got} {detail}")
    task = tasks.CreateTask(create, metadata=integrator, timeout=5)
    again = tasks.CreateTask(create, metadata=integrator, timeout=5)
    check("task: created open; the same request id answers the same task",
          task.status == "open" and task.task_id == again.task_id and task.due_at.seconds == create.due_at.seconds,
          f"{task} {again}")
    offer = session.wait_for("task: offered to the agent's session",
                             lambda u: u.HasField("offer") and u.offer.interaction_id == task.task_id)
    check("task: the offer is on the task channel with its title",
          offer.offer.channel == interaction.CHANNEL_TASK
          and offer.offer.interaction.subject == "Richiamare per la disdetta", str(offer))
    session.send(accept=routing.OfferAnswer(interaction_id=task.task_id))
    session.wait_for("task: assigned to the agent",
                     lambda u: u.HasField("assigned") and u.assigned.interaction_id == task.task_id)
    held = eventually("task: GetTask names the agent",
                      lambda: (lambda t: t if t.agent else None)(
                          tasks.GetTask(conversation.GetTaskRequest(task_id=task.task_id),
                                        metadata=agent, timeout=5)))
    check("task: still open while held", held.status == "open", str(held))
    close = conversation.CloseTaskRequest(request_id=str(uuid.uuid4()), task_id=task.task_id, outcome="done")
    closed = tasks.CloseTask(close, metadata=integrator, timeout=5)
    check("task: closed with its outcome", closed.status == "closed" and closed.outcome == "done", str(closed))
    got, detail = code_of(lambda: tasks.CloseTask(conversation.CloseTaskRequest(
        request_id=str(uuid.uuid4()), task_id=task.task_id), metadata=integrator, timeout=5))
    check("task: closing it again is FAILED_PRECONDITION", got == grpc.StatusCode.FAILED_PRECONDITION,
          f"{got} {detail}")
    got, _ = code_of(lambda: tasks.GetTask(conversation.GetTaskRequest(task_id=str(uuid.uuid4())),
                                           metadata=agent, timeout=5))
    check("task: an unknown one is NOT_FOUND", got == grpc.StatusCode.NOT_FOUND, str(got))
    session.wait_for("task: the agent is told it was closed",
                     lambda u: u.HasField("customer_left") and u.customer_left.interaction_id == task.task_id)
    session.send(complete=routing.CompleteInteraction(interaction_id=task.task_id, disposition="done"))

    def on_timeline():
        t = hist.ListTimeline(history.ListTimelineRequest(customer_id=email_customer, include_messages=True),
                              metadata=agent, timeout=5).interactions
        return next((i for i in t if i.id == task.task_id and i.messages), None)
    entry = eventually("task: on the customer's timeline with its description", on_timeline)
    check("task: the timeline shows its title and description",
          entry.channel == interaction.CHANNEL_TASK and entry.subject == "Richiamare per la disdetta"
          and "dopo le 17" in entry.messages[0].body, str(entry))
    session.close()

    print(f"{args.mode}: {len(PASSED)} passed, 0 failed")


if __name__ == "__main__":
    main()
