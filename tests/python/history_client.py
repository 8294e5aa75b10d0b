"""The integrator's view of the customer-history service, from Python grpcio.

With --amqp-url, publishes interactions and messages onto the RabbitMQ bus the
way a channel adapter does (an Envelope around the payload, persistent, with
publisher confirms) and reads them back from the timeline; in every mode it
records consent, updates a customer, finds it by any identifier, and checks
roles and validation errors. Exits non-zero on the first failed check. Run by
the Rust test suite (crates/centralino/tests/it/python.rs):

    python3 tests/python/history_client.py --addr 127.0.0.1:50051 \
        --integrator-token ... --agent-token ... --admin-token ... \
        [--amqp-url amqp://guest:guest@127.0.0.1:5672/%2f --bus-prefix centralino]
"""

import argparse
import time
import uuid

import grpc
from common import PASSED, bearer, build, check, code_of, eventually
from google.protobuf.timestamp_pb2 import Timestamp


def publish(args, pb, routing_key, payload):
    """Publishes like a Centralino adapter: an Envelope, persistent, confirmed."""
    import pika

    now = Timestamp()
    now.GetCurrentTime()
    env = pb["envelope"].Envelope(
        message_id=str(uuid.uuid4()),
        event_type=f"centralino.v1.{type(payload).__name__}",
        occurred_at=now,
        payload=payload.SerializeToString(),
        source="python-integrator",
    )
    conn = pika.BlockingConnection(pika.URLParameters(args.amqp_url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(
            exchange=f"{args.bus_prefix}.events",
            routing_key=routing_key,
            body=env.SerializeToString(),
            properties=pika.BasicProperties(delivery_mode=2, message_id=env.message_id,
                                            type=env.event_type, app_id="python-integrator"),
            mandatory=True,
        )
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--integrator-token", required=True)
    ap.add_argument("--agent-token", required=True)
    ap.add_argument("--admin-token", required=True)
    ap.add_argument("--amqp-url", help="publish events on this RabbitMQ (else only the API is used)")
    ap.add_argument("--bus-prefix", default="centralino")
    args = ap.parse_args()

    envelope, interaction, history, history_grpc = build(
        "envelope_pb2", "interaction_pb2", "history_pb2", "history_pb2_grpc")
    pb = {"envelope": envelope}
    channel = grpc.insecure_channel(args.addr)
    grpc.channel_ready_future(channel).result(timeout=10)
    api = history_grpc.HistoryServiceStub(channel)
    integrator, agent, admin = (bearer(args.integrator_token), bearer(args.agent_token),
                                bearer(args.admin_token))
    Kind = interaction.CustomerIdentifier.Kind
    phone = lambda v: interaction.CustomerIdentifier(kind=Kind.KIND_PHONE, value=v)
    number = f"06 {uuid.uuid4().int % 10**8:08d}"

    def find(ident, token=agent):
        return api.FindCustomers(history.FindCustomersRequest(identifier=ident),
                                 metadata=token, timeout=5).customers

    if args.amqp_url:
        created = interaction.InteractionCreated(interaction=interaction.Interaction(
            id=str(uuid.uuid4()), channel=interaction.CHANNEL_VOICE,
            direction=interaction.DIRECTION_INBOUND, identifiers=[phone("+39 " + number)],
            queue_hint="support", subject="IVR: 2 (billing)"))
        created.interaction.created_at.GetCurrentTime()
        call_id = created.interaction.id
        publish(args, pb, "interaction.voice.created", created)
        message = history.MessageRecorded(
            message_id=f"py-{uuid.uuid4()}", interaction_id=call_id, channel=interaction.CHANNEL_VOICE,
            direction=interaction.DIRECTION_OUTBOUND, body="Voicemail transcript: please call back")
        message.at.GetCurrentTime()
        publish(args, pb, "interaction.voice.message", message)
        customer = eventually("bus: the call's customer appears",
                              lambda: next(iter(find(phone("0039" + number.replace(" ", "")))), None))
        check("bus: phone normalized to E.164", customer.identifiers[0].value == "+39" + number.replace(" ", ""),
              str(customer.identifiers))

        def timeline():
            t = api.ListTimeline(history.ListTimelineRequest(customer_id=customer.id, include_messages=True),
                                 metadata=agent, timeout=5).interactions
            return t if t and t[0].messages else None
        entries = eventually("bus: the call and its message on the timeline", timeline)
        check("timeline: the interaction as published",
              entries[0].id == call_id and entries[0].subject == "IVR: 2 (billing)", str(entries[0]))
        check("timeline: its message inline",
              entries[0].messages[0].body == "Voicemail transcript: please call back")
        found = api.SearchInteractions(history.SearchInteractionsRequest(query="transcript", customer_id=customer.id),
                                       metadata=agent, timeout=5).interactions
        check("search: finds the call by its message text", [r.id for r in found] == [call_id], str(found))

    # Consent through the API: an unknown number makes a customer.
    revoke = history.RecordConsentRequest(
        request_id=f"py-{uuid.uuid4()}", identifier=phone(number), channel=interaction.CHANNEL_SMS,
        purpose="marketing", state=history.CONSENT_STATE_REVOKED, source="sms-keyword", note="STOP")
    first = api.RecordConsent(revoke, metadata=integrator, timeout=5)
    again = api.RecordConsent(revoke, metadata=integrator, timeout=5)
    check("consent: a repeated request id returns the first answer", first == again, f"{first} {again}")
    consent = api.GetConsent(history.GetConsentRequest(identifier=phone(number), include_history=True),
                             metadata=agent, timeout=5)
    check("consent: current state is REVOKED, recorded once",
          len(consent.current) == 1 and consent.current[0].state == history.CONSENT_STATE_REVOKED
          and len(consent.history) == 1, str(consent))
    customer_id = consent.customer_id

    crm = interaction.CustomerIdentifier(kind=Kind.KIND_EXTERNAL_ID, value=f"CRM-{uuid.uuid4().hex[:8]}")
    updated = api.UpdateCustomer(history.UpdateCustomerRequest(
        request_id=f"py-{uuid.uuid4()}", customer_id=customer_id, display_name="Maria Rossi",
        attributes={"tier": "gold"}, add_identifiers=[crm]), metadata=integrator, timeout=5)
    check("update: name, attribute and CRM id", updated.display_name == "Maria Rossi"
          and updated.attributes["tier"] == "gold" and len(updated.identifiers) >= 2, str(updated))
    check("find: by the CRM id", [c.id for c in find(crm)] == [customer_id])
    by_name = api.FindCustomers(history.FindCustomersRequest(name_prefix="maria ro"), metadata=agent, timeout=5)
    check("find: by name prefix", customer_id in [c.id for c in by_name.customers], str(by_name))

    code, details = code_of(lambda: api.GetCustomer(history.GetCustomerRequest(customer_id="42"),
                                                    metadata=agent, timeout=5))
    check("bad id -> INVALID_ARGUMENT naming the field",
          code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("customer_id"), f"{code} {details}")
    code, _ = code_of(lambda: api.GetCustomer(history.GetCustomerRequest(customer_id=str(uuid.uuid4())),
                                              metadata=agent, timeout=5))
    check("unknown id -> NOT_FOUND", code == grpc.StatusCode.NOT_FOUND, str(code))
    code, details = code_of(lambda: api.ListTimeline(
        history.ListTimelineRequest(customer_id=customer_id, page_size=5000), metadata=agent, timeout=5))
    check("page too large -> INVALID_ARGUMENT naming page_size",
          code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("page_size"), f"{code} {details}")
    code, _ = code_of(lambda: api.RecordConsent(revoke, metadata=agent, timeout=5))
    check("agent writes -> PERMISSION_DENIED", code == grpc.StatusCode.PERMISSION_DENIED, str(code))
    erase = history.EraseCustomerRequest(request_id=f"py-{uuid.uuid4()}", customer_id=customer_id,
                                         reason="right to erasure")
    code, _ = code_of(lambda: api.EraseCustomer(erase, metadata=integrator, timeout=5))
    check("integrator erases -> PERMISSION_DENIED", code == grpc.StatusCode.PERMISSION_DENIED, str(code))
    result = api.EraseCustomer(erase, metadata=admin, timeout=5)
    check("admin erases", result.customer_id == customer_id and result.identifiers_removed >= 2, str(result))
    check("erased: no longer found by phone", len(find(phone(number))) == 0)
    still = api.GetConsent(history.GetConsentRequest(identifier=phone(number)), metadata=agent, timeout=5)
    check("erased: the opt-out still holds",
          len(still.current) == 1 and still.current[0].state == history.CONSENT_STATE_REVOKED, str(still))

    print(f"history ({'bus + api' if args.amqp_url else 'api'}): {len(PASSED)} passed, 0 failed")


if __name__ == "__main__":
    main()
