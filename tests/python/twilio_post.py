#!/usr/bin/env python3
"""POSTs a Twilio-style webhook, signed by the `twilio` package's RequestValidator.

    twilio_post.py URL AUTH_TOKEN [--sign-with OTHER_TOKEN] [--tamper] name=value ...

Prints the HTTP status and the body. --sign-with signs with another token;
--tamper changes a parameter after signing (both must be refused).
"""
import argparse
import sys
import urllib.error
import urllib.parse
import urllib.request

from twilio.request_validator import RequestValidator


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("token")
    p.add_argument("--sign-with")
    p.add_argument("--tamper", action="store_true")
    p.add_argument("params", nargs="*")
    a = p.parse_intermixed_args()
    params = dict(kv.split("=", 1) for kv in a.params)
    signature = RequestValidator(a.sign_with or a.token).compute_signature(a.url, params)
    if a.tamper:
        params["Body"] = params.get("Body", "") + "!"
    data = urllib.parse.urlencode(params).encode()
    req = urllib.request.Request(a.url, data=data, method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    req.add_header("X-Twilio-Signature", signature)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            print(r.status)
            print(r.read().decode())
    except urllib.error.HTTPError as e:
        print(e.code)
        print(e.read().decode())


if __name__ == "__main__":
    sys.exit(main())
