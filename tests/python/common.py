"""What the integrator clients in this directory share: client stubs built from
the repository's proto/ files at run time (grpc_tools), and the check helpers."""

import importlib
import pathlib
import sys
import tempfile
import time

import grpc
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[2]
PASSED = []


def build(*modules):
    """Compiles every .proto under proto/ and returns the named modules
    (e.g. "ops_pb2", "ops_pb2_grpc") of package centralino.v1."""
    out = pathlib.Path(tempfile.mkdtemp(prefix="centralino-py-"))
    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto"))
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    rc = protoc.main(
        ["grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"-I{include}",
         f"--python_out={out}", f"--grpc_python_out={out}", *protos]
    )
    if rc != 0:
        sys.exit(f"protoc failed with {rc}")
    sys.path.insert(0, str(out))
    return tuple(importlib.import_module(f"centralino.v1.{m}") for m in modules)


def check(name, condition, detail=""):
    """Records a passed check, or prints the failure and exits non-zero."""
    if not condition:
        print(f"FAIL {name} {detail}")
        sys.exit(1)
    PASSED.append(name)
    print(f"ok   {name}")


def code_of(call):
    """The gRPC status code and details a call ends with (OK when it succeeds)."""
    try:
        call()
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


def bearer(token):
    return (("authorization", f"Bearer {token}"),)


def eventually(what, fn, timeout=20.0):
    """Polls `fn` until it returns something truthy (returned), or fails the check."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.1)
    check(what, False, f"not within {timeout} s")
