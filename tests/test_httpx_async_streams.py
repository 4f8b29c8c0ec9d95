"""The async TLS stream under contention: records stay in order.

``_AsyncTLSStream`` drains OpenSSL's output and sends it under one lock, so records
leave in the order OpenSSL made them; a record sent out of order breaks the TLS
connection (the server's decryption fails). Its lock takes the uncontended path
without a trip through the event loop (``anyio.Lock(fast_acquire=True)``, the
optimization measured by benchmarks/bench_httpx.py); this test makes it contend:
concurrent uploads multiplexed on one HTTP/2 connection to nginx, on asyncio and
trio, every response whole, on one connection, with one good staple verdict.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("staplecheck.clients._httplib").httpx
pytest.importorskip("h2")

import anyio  # noqa: E402

import staplecheck  # noqa: E402
import staplecheck.httpx as sh  # noqa: E402
from staplecheck import StapleStatus  # noqa: E402
from staplecheck.testing import CA  # noqa: E402
from tests.conftest import require_program  # noqa: E402
from tests.httpx_helpers import Http2Nginx  # noqa: E402

pytestmark = pytest.mark.anyio

UPLOADS = 12
SIZE = 48 * 1024


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


class Site:
    def __init__(self, directory: Path) -> None:
        root = CA(key_type="ecdsa", name="async streams root")
        intermediate = root.create_intermediate(key_type="ecdsa", name="async streams ca")
        leaf = intermediate.issue_cert("localhost", key_type="ecdsa")
        self.chain, self.key = leaf.write(directory, "localhost")
        self.staple = directory / "staple.der"
        self.staple.write_bytes(intermediate.ocsp_response(leaf, "good"))
        self.root = root.write_trust(directory / "root.pem")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Http2Nginx]]:
    require_program("nginx")
    made = Site(tmp_path_factory.mktemp("async-streams"))
    with Http2Nginx(made.chain, made.key, made.staple) as server:
        yield made, server


async def test_concurrent_uploads_on_one_http2_connection(site: tuple[Site, Any]) -> None:
    pki, server = site
    responses: list[Any] = []
    async with sh.async_client("soft-fail", verify=pki.root, http2=True) as client:

        async def upload(number: int) -> None:
            body = bytes([number]) * SIZE
            responses.append(await client.post(server.url(), content=body, timeout=30))

        async with anyio.create_task_group() as tasks:
            for number in range(UPLOADS):
                tasks.start_soon(upload, number)
    assert len(responses) == UPLOADS
    assert {(r.status_code, r.text, r.http_version) for r in responses} == {(200, "ok\n", "HTTP/2")}
    assert len({id(r.extensions["network_stream"]) for r in responses}) == 1
    verdict = staplecheck.staple_of(responses[0])
    assert verdict is not None
    assert verdict.status is StapleStatus.GOOD
