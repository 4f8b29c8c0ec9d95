"""What does a cold live-OCSP answer cost over a plain POST of the same request?

Against the project's loopback responder (``OCSPResponder``, one process, 127.0.0.1),
rounds alternate in a shuffled order:

- **baseline**: ``http.client`` POSTs the same DER request on a new connection and
  reads the body (what any client must do at least);
- **staplecheck**: ``fetch_ocsp`` (same request, new connection, deadline armed on
  every receive) plus ``judge_fetched`` with no cache (a cold validation);
- **fetch only**: ``fetch_ocsp`` alone (the fetcher's own cost);
- **warm facts**: fetch and judge with a ``StapleCache`` that already knows the leaf
  and issuer (as after the handshake's staple check), the response still new;
- **fetch_first**: fetch and judge through ``fetch_first`` with one URL (a thread per
  URL, a queue back).

Both sides pay the responder's own work (signing a fresh response), which dominates.
Reported: medians, and the median over rounds of each ratio in the same round.
Target (issue 8): a cold miss ≤ 1.2× the plain POST. A report, not a test: exits 0.

    python benchmarks/bench_ocsp_fetch.py            # about 10 s
    python benchmarks/bench_ocsp_fetch.py --quick    # about 3 s
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import os
import random
import statistics
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

from staplecheck.revocation._fetch import fetch_first, fetch_ocsp
from staplecheck.revocation._ocsp import build_request, judge_fetched
from staplecheck.testing import CA, OCSPResponder
from staplecheck.validation._validate import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_LIFETIME,
    DEFAULT_MAX_AGE,
    CertPair,
    StapleCache,
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    rounds = 150 if parser.parse_args().quick else 600
    issuer = CA().create_intermediate()
    leaf = issuer.issue_cert("localhost")
    certs = CertPair.of(leaf.cert, issuer.cert)
    request = build_request(certs).der
    with OCSPResponder(issuer) as responder:
        responder.set_status(leaf, "good")
        url = urllib.parse.urlsplit(responder.url)
        assert url.hostname is not None
        assert url.port is not None

        warm = StapleCache()  # certificate facts known (as after the handshake's staple check)

        def judge(der: bytes, cache: StapleCache | None = None) -> object:
            return judge_fetched(
                der,
                certs,
                nonce=None,
                now=datetime.datetime.now(datetime.timezone.utc),
                clock_skew=DEFAULT_CLOCK_SKEW,
                default_lifetime=DEFAULT_LIFETIME,
                max_age=DEFAULT_MAX_AGE,
                allow_sha1=True,
                cache=cache,
            )

        def baseline() -> None:
            connection = http.client.HTTPConnection(url.hostname, url.port, timeout=2)
            connection.request("POST", "/", request, {"Content-Type": "application/ocsp-request"})
            connection.getresponse().read()
            connection.close()

        def staplecheck() -> None:
            der = fetch_ocsp(responder.url, request, deadline=time.monotonic() + 2)
            assert judge(der).status.value == "good"  # type: ignore[attr-defined]

        def staplecheck_warm() -> None:
            der = fetch_ocsp(responder.url, request, deadline=time.monotonic() + 2)
            assert judge(der, warm).status.value == "good"  # type: ignore[attr-defined]

        def first() -> None:
            answer = fetch_first([responder.url], request, judge, deadline=time.monotonic() + 2)  # type: ignore[arg-type]
            assert answer.result is not None

        def fetch_only() -> None:
            fetch_ocsp(responder.url, request, deadline=time.monotonic() + 2)

        runs = {
            "baseline": baseline,
            "fetch only": fetch_only,
            "staplecheck": staplecheck,
            "warm facts": staplecheck_warm,
            "fetch_first": first,
        }
        for run in runs.values():  # warm up imports, the responder's threads
            for _ in range(20):
                run()
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(rounds):
            order = list(runs)
            random.shuffle(order)
            for name in order:
                started = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - started)
    base = times["baseline"]
    for name, values in times.items():
        ratio = statistics.median(v / b for v, b in zip(values, base, strict=False))
        print(f"{name:12} median {statistics.median(values) * 1e3:7.3f} ms   ratio {ratio:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
