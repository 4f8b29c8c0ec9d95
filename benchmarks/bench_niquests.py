"""niquests's side of bench_revocation.py's part 4, run in a venv of its own.

niquests installs urllib3-future, which replaces urllib3, so it cannot share a venv with
staplecheck's requests and urllib3 clients. bench_revocation.py starts this script with
that venv's python (default ``/tmp/venv-niquests/bin/python``; make it with
``python3 -m venv /tmp/venv-niquests && /tmp/venv-niquests/bin/pip install niquests``)
and drives it over stdin/stdout, one command a line, so that both clients run
interleaved against the same nginx and OCSP responder. Times are taken here, around the
client call only (``perf_counter_ns``), and sent back:

- ``version``: niquests's version;
- ``warm``: make the warm session and send one request (its OCSP answer is cached);
- ``first``: a new session (outside the timed region), then its first request, timed:
  handshake, OCSP query, signature check; answers ``ok NANOSECONDS OCSP_VERIFIED``;
- ``many N``: N requests on the warm session, each with ``Connection: close`` (a new
  connection and handshake each; the OCSP answer comes from niquests's cache);
  answers ``ok NANOSECONDS OCSP_VERIFIED`` (of the last);
- ``quit``.

How niquests is configured, and why (read from its source, niquests 3.21,
``extensions/revocation/_ocsp``): it checks OCSP on every new connection whose leaf
names an ``http://`` responder, in a session-wide in-memory cache keyed by the leaf's
fingerprint. By default (not strict) it does **not verify the response's signature when
the server's address is private** (127.0.0.1 is), nor behind a proxy; it stops checking
after four failures, or when ten or more answers were cached at under a second apart;
and its responder timeout is 0.2 s. Strict mode (``RevocationConfiguration(
strict_mode=True)``) verifies the signature with the issuer's key wherever the server
is, never gives up, and waits up to 1 s. This script uses **strict mode**, so that
niquests checks the signature on loopback as it would for a public server: without it,
niquests would do less work than staplecheck and the comparison would not be fair.

What niquests checks even then (and staplecheck checks too): the HTTP status, that
the body parses as an OCSP response, the signature with the issuer's own key, and the
certificate status (revoked refuses; unknown refuses in strict mode). What it does not
check, which staplecheck does: that the response's CertID is the certificate's,
thisUpdate/nextUpdate against the clock (a stale or future response is accepted; the
cache only drops a good answer after its nextUpdate), delegated responders (only the
issuer's signature is accepted), critical extensions, nonces, size caps and redirects.
It has no stapling. Its cache keeps the parsed response and trusts it on later
connections without re-validation.

    /tmp/venv-niquests/bin/python benchmarks/bench_niquests.py --serve --url URL --ca ROOT.pem
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="read commands from stdin")
    parser.add_argument("--url", required=True, help="the https:// URL to request")
    parser.add_argument("--ca", required=True, help="the root CA file (PEM)")
    args = parser.parse_args(argv)
    try:
        import niquests
        from niquests.extensions.revocation import RevocationConfiguration, RevocationStrategy
    except ImportError as error:
        print(f"error niquests is not installed: {error}", flush=True)
        return 1
    strict = RevocationConfiguration(strategy=RevocationStrategy.PREFER_OCSP, strict_mode=True)

    def session() -> Any:
        made = niquests.Session(revocation_configuration=strict)
        made.trust_env = False
        return made

    def get(client: Any) -> Any:
        response = client.get(args.url, headers={"Connection": "close"}, verify=args.ca, timeout=10)
        if response.status_code != 200 or response.content != b"ok\n":
            raise RuntimeError(f"niquests: {response.status_code} {response.content!r}")
        return response

    warm: Any = None
    for line in sys.stdin:
        command = line.split()
        if not command:
            continue
        if command[0] == "quit":
            print("ok", flush=True)
            break
        if command[0] == "version":
            print(f"ok {niquests.__version__}", flush=True)
        elif command[0] == "warm":
            warm = session()
            get(warm)
            print("ok", flush=True)
        elif command[0] == "first":
            client = session()
            start = time.perf_counter_ns()
            response = get(client)
            elapsed = time.perf_counter_ns() - start
            client.close()
            print(f"ok {elapsed} {response.ocsp_verified}", flush=True)
        elif command[0] == "many" and warm is not None:
            count = int(command[1])
            start = time.perf_counter_ns()
            for _ in range(count):
                response = get(warm)
            elapsed = time.perf_counter_ns() - start
            print(f"ok {elapsed} {response.ocsp_verified}", flush=True)
        else:
            print(f"error unknown command {line.strip()!r}", flush=True)
    if warm is not None:
        warm.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
