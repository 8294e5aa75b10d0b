"""The integrator's view of a running Centralino process, from Python grpcio.

Builds client stubs from the repository's proto/ files at run time (grpc_tools),
then checks what an integrator relies on: health, reflection, bearer-token auth
and roles, validation errors naming the field. Exits non-zero on the first
failed check. Run by the Rust test suite (crates/centralino/tests/it/python.rs):

    python3 tests/python/ops_client.py --addr 127.0.0.1:50051 \
        --admin-token ... --agent-token ... --supervisor-token ...
"""

import argparse
import pathlib
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from common import PASSED, bearer, build, check, code_of

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--admin-token", required=True)
    ap.add_argument("--agent-token", required=True)
    ap.add_argument("--supervisor-token", required=True)
    ap.add_argument("--tls-ca", help="PEM CA certificate: connect over TLS and trust it")
    ap.add_argument("--max-message-bytes", type=int, default=4 * 1024 * 1024)
    args = ap.parse_args()

    ops_pb2, ops_grpc = build("ops_pb2", "ops_pb2_grpc")
    if args.tls_ca:
        creds = grpc.ssl_channel_credentials(root_certificates=pathlib.Path(args.tls_ca).read_bytes())
        channel = grpc.secure_channel(args.addr, creds)
    else:
        channel = grpc.insecure_channel(args.addr)
    grpc.channel_ready_future(channel).result(timeout=10)

    health = health_pb2_grpc.HealthStub(channel)
    resp = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    check("health: server SERVING without a token", resp.status == health_pb2.HealthCheckResponse.SERVING)
    resp = health.Check(health_pb2.HealthCheckRequest(service="centralino.v1.OpsService"), timeout=5)
    check("health: OpsService SERVING", resp.status == health_pb2.HealthCheckResponse.SERVING)

    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = list(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5))
    names = {s.name for a in answers for s in a.list_services_response.service}
    check("reflection: lists centralino.v1.OpsService", "centralino.v1.OpsService" in names, str(names))
    answers = list(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="centralino.v1.OpsService")]), timeout=5))
    check("reflection: serves the ops.proto descriptor",
          any(a.file_descriptor_response.file_descriptor_proto for a in answers))

    ops = ops_grpc.OpsServiceStub(channel)

    code, _ = code_of(lambda: ops.WhoAmI(ops_pb2.WhoAmIRequest(), timeout=5))
    check("no token -> UNAUTHENTICATED", code == grpc.StatusCode.UNAUTHENTICATED, str(code))
    code, _ = code_of(lambda: ops.WhoAmI(ops_pb2.WhoAmIRequest(), metadata=bearer("not.a.token"), timeout=5))
    check("forged token -> UNAUTHENTICATED", code == grpc.StatusCode.UNAUTHENTICATED, str(code))
    tampered = args.agent_token[:-2] + ("AA" if not args.agent_token.endswith("AA") else "BB")
    code, _ = code_of(lambda: ops.WhoAmI(ops_pb2.WhoAmIRequest(), metadata=bearer(tampered), timeout=5))
    check("tampered signature -> UNAUTHENTICATED", code == grpc.StatusCode.UNAUTHENTICATED, str(code))

    me = ops.WhoAmI(ops_pb2.WhoAmIRequest(), metadata=bearer(args.agent_token), timeout=5)
    check("agent token -> WhoAmI answers", me.subject == "py-agent" and me.role == ops_pb2.ROLE_AGENT, str(me))

    code, _ = code_of(lambda: ops.GetInfo(ops_pb2.GetInfoRequest(), metadata=bearer(args.agent_token), timeout=5))
    check("agent on GetInfo -> PERMISSION_DENIED", code == grpc.StatusCode.PERMISSION_DENIED, str(code))
    info = ops.GetInfo(ops_pb2.GetInfoRequest(), metadata=bearer(args.supervisor_token), timeout=5)
    check("supervisor on GetInfo -> answers", "centralino.v1.OpsService" in info.services and info.bus in ("memory", "amqp"), str(info))

    code, _ = code_of(lambda: ops.ListDeadLetters(ops_pb2.ListDeadLettersRequest(queue="history"),
                                                   metadata=bearer(args.supervisor_token), timeout=5))
    check("supervisor on ListDeadLetters -> PERMISSION_DENIED", code == grpc.StatusCode.PERMISSION_DENIED, str(code))
    code, details = code_of(lambda: ops.ListDeadLetters(ops_pb2.ListDeadLettersRequest(queue=""),
                                                         metadata=bearer(args.admin_token), timeout=5))
    check("empty queue -> INVALID_ARGUMENT naming the field",
          code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("queue"), f"{code} {details}")
    code, details = code_of(lambda: ops.ListDeadLetters(ops_pb2.ListDeadLettersRequest(queue="history", limit=1000),
                                                         metadata=bearer(args.admin_token), timeout=5))
    check("limit too large -> INVALID_ARGUMENT naming the field",
          code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("limit"), f"{code} {details}")
    code, _ = code_of(lambda: ops.ListDeadLetters(ops_pb2.ListDeadLettersRequest(queue="nobody"),
                                                   metadata=bearer(args.admin_token), timeout=5))
    check("unknown consumer -> NOT_FOUND", code == grpc.StatusCode.NOT_FOUND, str(code))

    huge = "x" * (args.max_message_bytes + 1024)
    code, details = code_of(lambda: ops.ListDeadLetters(ops_pb2.ListDeadLettersRequest(queue=huge),
                                                         metadata=bearer(args.admin_token), timeout=10))
    # tonic reports an oversized request as OUT_OF_RANGE, naming the limit.
    check("request over the size limit -> OUT_OF_RANGE naming the limit",
          code == grpc.StatusCode.OUT_OF_RANGE and "too large" in details, f"{code} {details}")
    me = ops.WhoAmI(ops_pb2.WhoAmIRequest(), metadata=bearer(args.admin_token), timeout=5)
    check("server still answers after an oversized request", me.subject == "py-admin", str(me))


    print(f"{'tls' if args.tls_ca else 'plaintext'}: {len(PASSED)} passed, 0 failed")


if __name__ == "__main__":
    main()
