"""``staplecheck check --json`` end to end, with staples that ``openssl ocsp`` made.

None of the staples here comes from staplecheck's own test helper: a CA database
(``index.txt``) is answered by ``openssl ocsp -index ... -rsigner ... -reqin``, and the
responses are served by ``openssl s_server`` and nginx in TLS 1.2 and 1.3. For each,
under every policy, the JSON report and the exit code must match DESIGN.md's table,
and the staple is reported even under ``--policy off``.

``openssl ocsp`` stamps thisUpdate with the wall clock, so the PKI is made now.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from staplecheck import StapleStatus
from staplecheck.cli._main import main as cli_main
from staplecheck.testing import CA, Identity

from .conftest import require_program
from .realservers import SERVER_KINDS, TLS_VERSIONS, RealServer, free_port, launch
from .tls_cases import MODES


def table_accepts(status: StapleStatus, policy: str) -> bool:
    """DESIGN.md's rows good, revoked, unknown and invalid, which are the same for
    leaves with and without must-staple: only good passes, except under off."""
    return policy == "off" or status is StapleStatus.GOOD


@dataclasses.dataclass(frozen=True)
class Case:
    """One staple made by ``openssl ocsp`` and what ``check`` must report about it."""

    id: str
    expected: StapleStatus
    signer: str = "intermediate"
    """Whose certificate and key ``-rsigner``/``-rkey`` get."""
    index: str = "V"
    """What index.txt says about the served leaf: V(alid), R(evoked), or "" (absent,
    which ``openssl ocsp`` answers with "unknown")."""
    asked_about: str | None = None
    """Another leaf the request (so the response) is about, instead of the served one."""
    must_staple: bool = False
    """Whether the served leaf carries the TLS Feature status_request extension."""
    reason: str = ""
    """Text the verdict's reason must contain: which rule an invalid staple broke."""

    @property
    def about(self) -> str:
        return self.asked_about or self.id


CASES = [
    Case("good", StapleStatus.GOOD),
    Case("revoked", StapleStatus.REVOKED, index="R", must_staple=True),
    Case("unknown", StapleStatus.UNKNOWN, index=""),
    Case("delegated", StapleStatus.GOOD, signer="delegate", must_staple=True),
    Case(
        "responder-without-ocsp-signing",
        StapleStatus.INVALID,
        signer="delegate-no-eku",
        reason="lacks the id-kp-OCSPSigning extended key usage",
    ),
    Case(
        "for-another-certificate",
        StapleStatus.INVALID,
        asked_about="bystander",
        reason="no entry for serial",
    ),
]
# The text `openssl ocsp -resp_text` must show for the entry each index flag gives.
INDEX_STATUS = {"V": "good", "R": "revoked", "": "unknown"}


@dataclasses.dataclass(frozen=True)
class OCSPWorld:
    """A PKI on disk, a CA database, and ``openssl ocsp`` to answer from it."""

    directory: Path
    openssl: str
    trust: str
    intermediate: CA
    """The leaves' issuer, and the responder unless a case names a delegate."""
    identities: dict[str, Identity]
    """Leaves (one per case, plus the bystander) and the delegates, by name."""

    def subject(self, name: str) -> str:
        holder = self.identities.get(name, self.intermediate)
        return holder.cert.subject.rfc4514_string()

    def pem(self, name: str) -> Path:
        """``NAME.pem``: the certificate alone (intermediate, responder or leaf)."""
        return self.directory / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def served(self, name: str) -> tuple[str, str]:
        """The chain and key files a server of the leaf ``name`` is given."""
        return str(self.directory / f"{name}.crt"), str(self.key(name))

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [self.openssl, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"openssl {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def respond(self, case: Case) -> Path:
        """``openssl ocsp``'s DER response to a request about ``case.about``."""
        request = self.directory / f"{case.id}.req.der"
        response = self.directory / f"{case.id}.resp.der"
        issuer = str(self.pem("intermediate"))
        self.run(
            "ocsp", "-issuer", issuer, "-cert", str(self.pem(case.about)), "-no_nonce",
            "-reqout", str(request),
        )  # fmt: skip
        self.run(
            "ocsp", "-index", str(self.directory / "index.txt"), "-CA", issuer,
            "-rsigner", str(self.pem(case.signer)), "-rkey", str(self.key(case.signer)),
            "-reqin", str(request), "-respout", str(response), "-ndays", "1",
        )  # fmt: skip
        # The response is what the case means: read back by OpenSSL itself.
        text = self.run("ocsp", "-respin", str(response), "-resp_text", "-noverify")
        assert "OCSP Response Status: successful" in text, text
        served_index = "V" if case.asked_about else case.index
        assert f"Cert Status: {INDEX_STATUS[served_index]}" in text, text
        return response


def _index_line(cert: x509.Certificate, flag: str, revoked_at: datetime.datetime) -> str:
    """A CA database line. Serials are whole-byte upper-case hex, as OpenSSL looks
    them up; the subject column is only a label (ocsp matches serials), made unique
    because the database refuses two valid entries with one subject."""
    digits = f"{cert.serial_number:X}"
    serial = "0" * (len(digits) % 2) + digits
    expiry = cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    revocation = revoked_at.strftime("%y%m%d%H%M%SZ") + ",keyCompromise" if flag == "R" else ""
    return f"{flag}\t{expiry}\t{revocation}\t{serial}\tunknown\t/CN=serial-{serial}\n"


@pytest.fixture(scope="module")
def ocsp_world(tmp_path_factory: pytest.TempPathFactory) -> OCSPWorld:
    openssl = require_program("openssl")
    directory = tmp_path_factory.mktemp("check-e2e")
    root = CA(name="check e2e root")  # now: openssl and the servers use the wall clock
    intermediate = root.create_intermediate(name="check e2e intermediate")
    identities = {
        **{
            case.id: intermediate.issue_cert("localhost", must_staple=case.must_staple)
            for case in CASES
        },
        "bystander": intermediate.issue_cert("localhost"),
        "delegate": intermediate.issue_responder(name="check e2e delegated responder"),
        "delegate-no-eku": intermediate.issue_responder(
            name="check e2e responder without OCSPSigning", ocsp_signing=False
        ),
    }
    for name, identity in identities.items():
        identity.write(directory, name)
        (directory / f"{name}.pem").write_bytes(identity.cert_pem)
    (directory / "intermediate.pem").write_bytes(intermediate.cert_pem)
    (directory / "intermediate.key").write_bytes(
        intermediate.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    revoked_at = intermediate.now - datetime.timedelta(minutes=30)
    flags = {case.id: case.index for case in CASES} | {"bystander": "V"}
    (directory / "index.txt").write_text(
        "".join(
            _index_line(identities[name].cert, flag, revoked_at)
            for name, flag in flags.items()
            if flag
        )
    )
    trust = root.write_trust(directory / "root.pem")
    return OCSPWorld(directory, openssl, trust, intermediate, identities)


@pytest.fixture(scope="module")
def staples(ocsp_world: OCSPWorld) -> dict[str, Path]:
    return {case.id: ocsp_world.respond(case) for case in CASES}


# --- the JSON report of every case, server, TLS version and policy -------------------------

SERVED = [
    (kind, version, case) for kind in SERVER_KINDS for version in TLS_VERSIONS for case in CASES
]


@dataclasses.dataclass(frozen=True)
class Served:
    server: RealServer
    version: str
    case: Case


@pytest.fixture(scope="module", params=SERVED, ids=[f"{k}-tls{v}-{c.id}" for k, v, c in SERVED])
def served(
    request: pytest.FixtureRequest, ocsp_world: OCSPWorld, staples: dict[str, Path]
) -> Iterator[Served]:
    kind, version, case = request.param
    chain, key = ocsp_world.served(case.id)
    with launch(kind, chain, key, staples[case.id], version) as server:
        yield Served(server, version, case)


def check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    """``staplecheck check ... --json``: exit code and the JSON it printed."""
    capsys.readouterr()
    code = cli_main(["check", *argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


@pytest.mark.parametrize("policy", MODES)
def test_check_reports_openssl_made_staples(
    served: Served, policy: str, ocsp_world: OCSPWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    case, port = served.case, served.server.port
    url = served.server.url()
    code, report = check(capsys, url, "--cafile", ocsp_world.trust, "--policy", policy)
    accepted = table_accepts(case.expected, policy)
    assert code == (0 if accepted else 1), report
    assert report["accepted"] is accepted
    assert report["policy"] == policy
    assert report["url"] == url
    assert (report["host"], report["port"]) == ("localhost", port)
    assert report["tls_version"] == f"TLSv{served.version}"
    assert report["must_staple"] is case.must_staple
    staple = report["staple"]
    # Reported in full even under --policy off, which never rejects it.
    assert staple["status"] == case.expected.value, staple["reason"]
    assert staple["reason"]
    assert case.reason in staple["reason"]
    assert staple["must_staple"] is case.must_staple
    if case.expected is not StapleStatus.INVALID:
        assert ocsp_world.subject(case.signer) in staple["responder"]
        serial = ocsp_world.identities[case.id].cert.serial_number
        assert staple["serial_number"] == f"{serial:#x}"


def test_check_as_a_real_process(ocsp_world: OCSPWorld, staples: dict[str, Path]) -> None:
    """The installed command, in its own process: a revoked staple under must-staple."""
    with launch("nginx", *ocsp_world.served("revoked"), staples["revoked"], "1.3") as server:
        done = subprocess.run(
            [sys.executable, "-m", "staplecheck", "check", server.url(), "--cafile",
             ocsp_world.trust, "--policy", "must-staple", "--json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["accepted"] is False
    assert report["policy"] == "must-staple"
    assert report["tls_version"] == "TLSv1.3"
    assert report["must_staple"] is True
    assert report["staple"]["status"] == "revoked"
    assert report["staple"]["revocation_reason"] == "keyCompromise"


# --- connection failures and usage errors -------------------------------------------------


def test_a_refused_port_exits_3(capsys: pytest.CaptureFixture[str], ocsp_world: OCSPWorld) -> None:
    url = f"https://localhost:{free_port()}/"  # free a moment ago: nothing listens
    code, report = check(capsys, url, "--cafile", ocsp_world.trust)
    assert code == 3
    assert report["url"] == url
    assert "cannot connect" in report["error"]
    assert "accepted" not in report


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_an_untrusted_chain_exits_3(
    kind: str,
    capsys: pytest.CaptureFixture[str],
    ocsp_world: OCSPWorld,
    staples: dict[str, Path],
) -> None:
    with launch(kind, *ocsp_world.served("good"), staples["good"]) as server:
        trusted, _ = check(capsys, server.url(), "--cafile", ocsp_world.trust)
        code, report = check(capsys, server.url())  # no --cafile: certifi's roots
    assert trusted == 0  # the control: the same server passes with its root
    assert code == 3
    assert "certificate verify failed" in report["error"]
    assert "accepted" not in report
    assert "staple" not in report


def test_a_failed_handshake_exits_3_with_a_readable_error(
    capsys: pytest.CaptureFixture[str], ocsp_world: OCSPWorld
) -> None:
    # s_server fails any handshake that asks for a staple when its status file does
    # not parse: the client gets an internal_error alert.
    garbage = ocsp_world.directory / "garbage.der"
    garbage.write_bytes(b"\x30\x03not an OCSP response")
    with launch("s_server", *ocsp_world.served("good"), garbage) as server:
        code, report = check(capsys, server.url(), "--cafile", ocsp_world.trust)
    assert code == 3
    error = report["error"]
    assert error.startswith(f"TLS with localhost port {server.port} failed: ")
    assert "alert internal error" in error
    # One readable message, not the repr of an exception's argument tuple.
    assert "failed: (" not in error, error


def test_a_non_https_url_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert cli_main(["check", "http://localhost/", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "not an https:// URL" in captured.err
