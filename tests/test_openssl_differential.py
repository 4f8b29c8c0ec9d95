"""Differential tests: staplecheck against the real ``openssl ocsp`` command.

OpenSSL plays both parts that matter here. As a responder (``openssl ocsp -index``)
it makes OCSP responses that staplecheck's own test factory did not write; as a client
(``openssl ocsp -respin``) it gives a second opinion on each response. For every case
staplecheck's verdict must map onto OpenSSL's:

- "Response verify OK" and ``CERT: good|revoked|unknown``: the same status;
- "Response verify OK" and ``ERROR: No Status found``: invalid (no entry for the cert);
- "Response Verify Failure": invalid;
- "WARNING: Status times invalid." with "status expired" or "status too old": stale,
  with "status not yet valid" or "nextupdate before thisupdate": invalid.

Where the two tools apply different rules, the case pins OpenSSL's verdict too and says
why in ``difference``: staplecheck's stricter verdict is the one asserted, and a
change in OpenSSL's behaviour fails the test so the documentation gets updated.

``openssl ocsp`` stamps thisUpdate with the wall clock, so this PKI is made at the
real current time and staplecheck judges at the real current time (``now=None``), not
at the fixed ``NOW`` the rest of the suite uses. For the time rules, which need
backdated responses ``openssl ocsp`` cannot make, staplecheck.testing signs with the
same issuer key and OpenSSL still judges (``TIME_CASES``).

At the end of the file, a small corpus made with cryptography's own
``ocsp.OCSPResponseBuilder`` (a third, independent encoder) must get the same verdicts.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from staplecheck import StapleResult, StapleStatus, validate_staple
from staplecheck.cli._main import main as cli_main
from staplecheck.testing import CA, Identity
from staplecheck.testing._pki import PrivateKey
from tests.conftest import NOW, PKI, require_program

UTC = datetime.timezone.utc

# --- the PKI on disk -------------------------------------------------------------------

# The revoked leaves: the revocation field of their index.txt line after the time, and
# the CRLReason OpenSSL then puts in the response. "keyTime" makes keyCompromise plus
# an invalidity date single extension (2.5.29.24).
REVOCATIONS: dict[str, tuple[str, str | None]] = {
    "revoked": ("keyCompromise", "keyCompromise"),
    "revoked-no-reason": ("", None),
    "on-hold": ("certificateHold,holdInstructionReject", "certificateHold"),
    "revoked-key-time": ("keyTime,{compromised}", "keyCompromise"),
}
# What the responder's index.txt says about each leaf. "unknown" is left out of the
# index, which is how `openssl ocsp -index` comes to answer "unknown".
INDEX_STATUS = {
    "good": "good",
    "unknown": "unknown",
    "self-signer": "good",
    **{name: "revoked" for name in REVOCATIONS},
}


@dataclasses.dataclass(frozen=True)
class World:
    """A PKI written as PEM files, plus the responder's index.txt.

    Every certificate (and its key) is ``DIR/NAME.pem`` (``DIR/NAME.key``). Leaves are
    issued by ``intermediate``; responders are named after what is wrong or right with
    them. Trust files hold root + intermediate, plus the foreign root in the two
    ``with-foreign-root*`` variants (once plain, once explicitly trusted for OCSP
    signing, OpenSSL's ``TRUSTED CERTIFICATE`` form).
    """

    directory: Path
    openssl: str
    certs: dict[str, x509.Certificate]
    revoked_at: datetime.datetime
    issuer: CA
    """The intermediate, for responses ``openssl ocsp`` cannot make (backdated ones)."""

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def trust(self, name: str) -> Path:
        return self.directory / f"trust-{name}.pem"

    @property
    def index(self) -> Path:
        return self.directory / "index.txt"

    def bundle(self, names: Sequence[str]) -> Path:
        """One PEM file with the named certificates (for ``-verify_other``)."""
        path = self.directory / ("bundle-" + "+".join(names) + ".pem")
        if not path.exists():
            path.write_bytes(b"".join(self.cert(n).read_bytes() for n in names))
        return path


def _pem_key(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _index_time(moment: datetime.datetime) -> str:
    """The CA database's UTCTime: YYMMDDHHMMSSZ."""
    return moment.astimezone(UTC).strftime("%y%m%d%H%M%SZ")


def _index_serial(cert: x509.Certificate) -> str:
    """Upper-case hex with an even number of digits: OpenSSL looks the serial up as the
    exact string BN_bn2hex prints, which always writes whole bytes."""
    digits = f"{cert.serial_number:X}"
    return "0" * (len(digits) % 2) + digits


def _index_line(cert: x509.Certificate, revocation: str = "") -> str:
    """A CA database line: V(alid) without ``revocation``, else R(evoked) with it
    ("time[,reason[,argument]]")."""
    subject = "/" + "/".join(a.rfc4514_string() for a in cert.subject)
    expiry = _index_time(cert.not_valid_after_utc)
    flag = "R" if revocation else "V"
    return f"{flag}\t{expiry}\t{revocation}\t{_index_serial(cert)}\tunknown\t{subject}\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    openssl = require_program("openssl")
    directory = tmp_path_factory.mktemp("openssl-pki")
    now = datetime.datetime.now(UTC)  # openssl stamps responses with the wall clock

    root = CA(name="differential root", now=now)
    # An RSA issuer, so -rmd and RSA-PSS (-rsigopt) apply; ECDSA and Ed25519 delegates.
    intermediate = root.create_intermediate(key_type="rsa", name="differential intermediate")
    foreign_root = CA(name="foreign root", now=now)
    holders: dict[str, CA | Identity] = {
        "root": root,
        "intermediate": intermediate,
        "good": intermediate.issue_cert("good.example"),
        **{name: intermediate.issue_cert(f"{name}.example") for name in REVOCATIONS},
        "unknown": intermediate.issue_cert("unknown.example"),
        # A leaf that carries id-kp-OCSPSigning and could sign its own status.
        "self-signer": intermediate.issue_cert(
            "self-signer.example", extra_usages=[ExtendedKeyUsageOID.OCSP_SIGNING]
        ),
        "delegate": intermediate.issue_responder(name="delegate"),
        "delegate-ed25519": intermediate.issue_responder(
            name="delegate ed25519", key_type="ed25519"
        ),
        "delegate-no-eku": intermediate.issue_responder(
            name="delegate without OCSPSigning", ocsp_signing=False
        ),
        "delegate-expired": intermediate.issue_responder(
            name="expired delegate",
            not_before=now - datetime.timedelta(days=3),
            not_after=now - datetime.timedelta(days=1),
        ),
        # OCSP signers with the right usage but the wrong issuer.
        "root-responder": root.issue_responder(name="responder of the root"),
        "foreign-responder": foreign_root.issue_responder(name="responder of another CA"),
    }
    certs: dict[str, x509.Certificate] = {"foreign-root": foreign_root.cert}
    for name, holder in holders.items():
        certs[name] = holder.cert
        (directory / f"{name}.key").write_bytes(_pem_key(holder.private_key))
    for name, cert in certs.items():
        (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    revoked_at = (now - datetime.timedelta(days=1)).replace(microsecond=0)
    compromised = (revoked_at - datetime.timedelta(days=1)).strftime("%Y%m%d%H%M%SZ")
    index = [_index_line(certs["good"]), _index_line(certs["self-signer"])]
    for name, (field, _) in REVOCATIONS.items():
        revocation = ",".join(
            part
            for part in (_index_time(revoked_at), field.format(compromised=compromised))
            if part
        )
        index.append(_index_line(certs[name], revocation))
    (directory / "index.txt").write_text("".join(index))

    ca_pem = root.cert_pem + intermediate.cert_pem
    (directory / "trust-default.pem").write_bytes(ca_pem)
    (directory / "trust-with-foreign-root.pem").write_bytes(ca_pem + foreign_root.cert_pem)
    explicit = _run(
        [openssl, "x509", "-in", str(directory / "foreign-root.pem"), "-addtrust", "OCSPSigning"]
    )
    assert "BEGIN TRUSTED CERTIFICATE" in explicit
    (directory / "trust-with-foreign-root-ocsp-trusted.pem").write_bytes(ca_pem + explicit.encode())
    return World(directory, openssl, certs, revoked_at, intermediate)


def _run(command: Sequence[str]) -> str:
    """Run a command that must succeed; return its stdout."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


# --- the cases -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One response made by ``openssl ocsp`` and the verdict expected on it."""

    id: str
    signer: str
    """The certificate and key given to -rsigner / -rkey."""
    certs: tuple[str, ...] = ("good",)
    """The certificates the request asks about: one entry each in the response."""
    check: str | None = None
    """The certificate both tools judge the response for; default the first of certs."""
    expected: StapleStatus = StapleStatus.GOOD
    """staplecheck's verdict, which OpenSSL's must map to unless ``difference`` says."""
    responder_options: tuple[str, ...] = ()
    """Extra flags for the responder: -resp_key_id, -rmd, -rsigopt, -resp_no_certs."""
    cert_id_hash: str = "sha1"
    """The CertID hash of the request, which the responder copies."""
    lookup_hash: str | None = None
    """The CertID hash OpenSSL looks the status up with; default cert_id_hash."""
    trust: str = "default"
    verify_other: tuple[str, ...] = ("intermediate",)
    """Untrusted certificates OpenSSL may use to find and chain the signer."""
    openssl: tuple[bool, str | None] | None = None
    """(verified, status) OpenSSL gives where its rules differ from staplecheck's."""
    difference: str = ""
    via_cli: bool = False
    """Also judge through ``staplecheck verify --json``."""

    @property
    def checked(self) -> str:
        return self.check or self.certs[0]

    @property
    def signature_algorithm(self) -> str:
        """The name ``openssl ocsp -resp_text`` must print for the response signature."""
        options = list(self.responder_options)
        digest = options[options.index("-rmd") + 1] if "-rmd" in options else "sha256"
        if self.signer == "delegate-ed25519":
            return "ED25519"
        if self.signer in {"intermediate"}:
            if "rsa_padding_mode:pss" in options:
                return "rsassaPss"
            return f"{digest}WithRSAEncryption"
        return f"ecdsa-with-{digest.upper()}"


KEY_ID = ("-resp_key_id",)
SHA384 = ("-rmd", "sha384")

CASES = [
    # --- OpenSSL and staplecheck agree: the issuer signs ---
    Case("issuer-by-name-good", "intermediate", via_cli=True),
    Case(
        "issuer-by-name-revoked",
        "intermediate",
        certs=("revoked",),
        expected=StapleStatus.REVOKED,
        via_cli=True,
    ),
    Case(
        "issuer-by-name-unknown",
        "intermediate",
        certs=("unknown",),
        expected=StapleStatus.UNKNOWN,
        via_cli=True,
    ),
    Case("issuer-by-key-rmd-sha384", "intermediate", responder_options=(*KEY_ID, *SHA384)),
    Case(
        "issuer-by-key-rmd-sha256-certid-sha256",
        "intermediate",
        responder_options=(*KEY_ID, "-rmd", "sha256"),
        cert_id_hash="sha256",
    ),
    Case(
        "issuer-revoked-without-reason",
        "intermediate",
        certs=("revoked-no-reason",),
        expected=StapleStatus.REVOKED,
    ),
    Case(
        "issuer-certificate-hold",
        "intermediate",
        certs=("on-hold",),
        expected=StapleStatus.REVOKED,
    ),
    Case(
        "delegate-revoked-with-invalidity-date",
        "delegate",
        certs=("revoked-key-time",),
        expected=StapleStatus.REVOKED,
    ),
    Case(
        "issuer-revoked-certid-sha384",
        "intermediate",
        certs=("revoked",),
        expected=StapleStatus.REVOKED,
        cert_id_hash="sha384",
    ),
    Case("issuer-no-embedded-certs", "intermediate", responder_options=("-resp_no_certs",)),
    Case(
        "issuer-rsa-pss",
        "intermediate",
        responder_options=("-rsigopt", "rsa_padding_mode:pss"),
    ),
    Case(
        "issuer-rsa-pss-sha384-digest-salt",
        "intermediate",
        responder_options=(
            *SHA384,
            "-rsigopt",
            "rsa_padding_mode:pss",
            "-rsigopt",
            "rsa_pss_saltlen:digest",
        ),
    ),
    # --- agree: a delegated responder signs ---
    Case("delegate-by-name-good", "delegate", via_cli=True),
    Case(
        "delegate-by-name-revoked",
        "delegate",
        certs=("revoked",),
        expected=StapleStatus.REVOKED,
    ),
    Case(
        "delegate-by-name-unknown",
        "delegate",
        certs=("unknown",),
        expected=StapleStatus.UNKNOWN,
    ),
    Case("delegate-by-key-rmd-sha384", "delegate", responder_options=(*KEY_ID, *SHA384)),
    Case(
        "delegate-by-key-revoked-rmd-sha256-certid-sha256",
        "delegate",
        certs=("revoked",),
        expected=StapleStatus.REVOKED,
        responder_options=(*KEY_ID, "-rmd", "sha256"),
        cert_id_hash="sha256",
    ),
    Case("delegate-ed25519-by-key", "delegate-ed25519", responder_options=KEY_ID),
    # --- agree: one response with several entries, judged for each certificate ---
    *(
        Case(
            f"several-entries-{name}",
            "delegate",
            certs=("good", "revoked", "unknown"),
            check=name,
            expected=StapleStatus(INDEX_STATUS[name]),
        )
        for name in ("good", "revoked", "unknown")
    ),
    # --- agree: not trustworthy evidence ---
    Case(
        "delegate-without-ocsp-signing-eku",
        "delegate-no-eku",
        expected=StapleStatus.INVALID,
        via_cli=True,
    ),
    Case(
        "delegate-expired",
        "delegate-expired",
        expected=StapleStatus.INVALID,
    ),
    Case(
        # Issued by the root, which is in the CAfile: it chains, but OpenSSL 3.0 still
        # refuses it ("root ca not trusted") because it was not issued by the issuer.
        "responder-issued-by-the-root",
        "root-responder",
        expected=StapleStatus.INVALID,
    ),
    Case(
        # The root itself, elsewhere in the chain: not the leaf's issuer.
        "root-signs-for-the-intermediates-leaf",
        "root",
        expected=StapleStatus.INVALID,
    ),
    Case(
        "responder-of-another-ca-untrusted-root",
        "foreign-responder",
        expected=StapleStatus.INVALID,
        via_cli=True,
    ),
    Case(
        # The foreign root is a trust anchor, but without explicit OCSP-signing trust
        # OpenSSL 3.0 still refuses a responder not issued by the issuer.
        "responder-of-another-ca-trusted-root",
        "foreign-responder",
        expected=StapleStatus.INVALID,
        trust="with-foreign-root",
    ),
    Case(
        "leaf-signs-for-itself-without-ocsp-signing-eku",
        "good",
        expected=StapleStatus.INVALID,
    ),
    Case(
        "response-for-a-different-certificate",
        "intermediate",
        certs=("good",),
        check="revoked",
        expected=StapleStatus.INVALID,
        via_cli=True,
    ),
    # --- OpenSSL and staplecheck differ: staplecheck's verdict is asserted ---
    Case(
        "difference-leaf-with-ocsp-signing-eku-signs-for-itself",
        "self-signer",
        certs=("self-signer",),
        expected=StapleStatus.INVALID,
        openssl=(True, "good"),
        difference=(
            "OpenSSL accepts any certificate issued by the issuer with id-kp-OCSPSigning, "
            "including the very certificate whose status is asked; staplecheck never lets "
            "the leaf vouch for itself (DESIGN.md rule 3)."
        ),
    ),
    Case(
        "difference-delegate-supplied-out-of-band",
        "delegate",
        responder_options=("-resp_no_certs",),
        verify_other=("intermediate", "delegate"),
        expected=StapleStatus.INVALID,
        openssl=(True, "good"),
        difference=(
            "OpenSSL finds the delegated signer among -verify_other certificates; "
            "staplecheck looks only at the issuer and the certificates inside the "
            "response, since a staple is all a TLS client receives (DESIGN.md rule 3)."
        ),
    ),
    Case(
        "difference-explicitly-ocsp-trusted-foreign-root",
        "foreign-responder",
        trust="with-foreign-root-ocsp-trusted",
        expected=StapleStatus.INVALID,
        openssl=(True, "good"),
        difference=(
            "OpenSSL accepts any responder that chains to a root marked trusted for "
            "OCSPSigning (TRUSTED CERTIFICATE, -addtrust OCSPSigning), for any issuer's "
            "certificates; staplecheck accepts only the issuer or its direct delegate."
        ),
    ),
    Case(
        "difference-certid-hash-other-than-lookup-hash",
        "intermediate",
        cert_id_hash="sha256",
        lookup_hash="sha1",
        expected=StapleStatus.GOOD,
        openssl=(True, None),
        difference=(
            "OpenSSL matches an entry only by the whole CertID, hash algorithm included, "
            "so asking with SHA-1 misses a SHA-256 entry ('No Status found'); staplecheck "
            "recomputes the CertID with whatever hash each entry uses (DESIGN.md rule 2)."
        ),
    ),
]


# --- running openssl -------------------------------------------------------------------

# OCSP_check_validity's complaints, as the openssl command prints them after
# "WARNING: Status times invalid.", and what each means in staplecheck's terms.
_TIME_ERRORS = {
    "status not yet valid": StapleStatus.INVALID,
    "nextupdate before thisupdate": StapleStatus.INVALID,
    "status expired": StapleStatus.STALE,
    "status too old": StapleStatus.STALE,
}


@dataclasses.dataclass(frozen=True)
class OpenSSLVerdict:
    """What ``openssl ocsp -respin`` printed about one certificate."""

    verified: bool
    status: str | None
    """good, revoked or unknown; None for "No Status found"."""
    time_errors: tuple[str, ...]
    """OCSP_check_validity's reasons when it printed "Status times invalid"."""
    this_update: datetime.datetime | None
    next_update: datetime.datetime | None
    revocation_time: datetime.datetime | None
    revocation_reason: str | None
    output: str

    def as_staplecheck(self) -> StapleStatus:
        """The staplecheck status this verdict corresponds to."""
        if not self.verified or self.status is None:
            return StapleStatus.INVALID
        meanings = {_TIME_ERRORS[e] for e in self.time_errors}
        if StapleStatus.INVALID in meanings:
            return StapleStatus.INVALID
        if StapleStatus.STALE in meanings:
            return StapleStatus.STALE
        return StapleStatus(self.status)


def _hash_options(digest: str, cert: Path) -> list[str]:
    """A CertID digest flag must come before the -cert it applies to."""
    return [f"-{digest}", "-cert", str(cert)]


def make_response(world: World, case: Case, directory: Path) -> Path:
    """Have ``openssl ocsp`` answer a request for ``case.certs`` from the index."""
    request = directory / "request.der"
    response = directory / "response.der"
    ask = [opt for name in case.certs for opt in _hash_options(case.cert_id_hash, world.cert(name))]
    _run(
        [
            world.openssl,
            "ocsp",
            "-issuer",
            str(world.cert("intermediate")),
            *ask,
            "-no_nonce",  # a staple is a cached response: no nonce
            "-reqout",
            str(request),
        ]
    )
    _run(
        [
            world.openssl,
            "ocsp",
            "-index",
            str(world.index),
            "-CA",
            str(world.cert("intermediate")),
            "-rsigner",
            str(world.cert(case.signer)),
            "-rkey",
            str(world.key(case.signer)),
            "-reqin",
            str(request),
            "-respout",
            str(response),
            "-ndays",
            "1",
            *case.responder_options,
        ]
    )
    return response


_OPENSSL_TIME = "%b %d %H:%M:%S %Y GMT"
_TIMES_INVALID = "WARNING: Status times invalid."


def _openssl_time(output: str, label: str) -> datetime.datetime | None:
    match = re.search(rf"^\s*{label}: (.+ GMT)$", output, re.MULTILINE)
    if match is None:
        return None
    # OpenSSL pads the day with a space ("Nov  1"); strptime accepts either form.
    text = " ".join(match.group(1).split())
    return datetime.datetime.strptime(text, _OPENSSL_TIME).replace(tzinfo=UTC)


def openssl_verdict(
    world: World,
    response: Path,
    checked: str,
    *,
    lookup_hash: str = "sha1",
    trust: str = "default",
    verify_other: Sequence[str] = ("intermediate",),
    options: Sequence[str] = (),
) -> OpenSSLVerdict:
    """OpenSSL's own check of ``response`` for the certificate ``checked``."""
    cert = world.cert(checked)
    command = [
        world.openssl,
        "ocsp",
        "-respin",
        str(response),
        "-issuer",
        str(world.cert("intermediate")),
        *_hash_options(lookup_hash, cert),
        "-CAfile",
        str(world.trust(trust)),
        "-verify_other",
        str(world.bundle(verify_other)),
        "-no_nonce",
        *options,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    output = done.stdout + done.stderr
    verified = "Response verify OK" in output
    failed = "Response Verify Failure" in output
    assert verified != failed, f"OpenSSL said neither or both:\n{output}"
    # "CERT: good", or "CERT: WARNING: Status times invalid." and the error lines
    # before the status on a line of its own.
    line = re.search(
        rf"^{re.escape(str(cert))}: (?:{re.escape(_TIMES_INVALID)}\n(?:.*:error:.*\n)*)?(.*)$",
        output,
        re.MULTILINE,
    )
    assert line is not None, f"OpenSSL printed no status line:\n{output}"
    said = line.group(1).strip()
    if said == "ERROR: No Status found.":
        status = None
    else:
        assert said in {"good", "revoked", "unknown"}, output
        status = said
    time_errors: tuple[str, ...] = ()
    if _TIMES_INVALID in output:
        time_errors = tuple(e for e in _TIME_ERRORS if f":{e}:" in output)
        assert time_errors, f"an unrecognized time complaint:\n{output}"
    reason = re.search(r"^\s*Reason: (\S+)$", output, re.MULTILINE)
    # OpenSSL exits 0 only when the response verifies and the status was found.
    assert (done.returncode == 0) == (verified and status is not None), output
    return OpenSSLVerdict(
        verified=verified,
        status=status,
        time_errors=time_errors,
        this_update=_openssl_time(output, "This Update"),
        next_update=_openssl_time(output, "Next Update"),
        revocation_time=_openssl_time(output, "Revocation Time"),
        revocation_reason=reason.group(1) if reason else None,
        output=output,
    )


def openssl_text(world: World, response: Path) -> str:
    """``openssl ocsp -resp_text`` of a response, without verifying it."""
    return _run([world.openssl, "ocsp", "-respin", str(response), "-resp_text", "-noverify"])


def check_response_shape(world: World, case: Case, response: Path) -> None:
    """The response is what the case meant OpenSSL to make, read back by both OpenSSL
    (-resp_text) and cryptography, so no case passes by testing something else."""
    text = openssl_text(world, response)
    assert "OCSP Response Status: successful (0x0)" in text
    parsed = ocsp.load_der_ocsp_response(response.read_bytes())

    responder_id = re.search(r"Responder Id: (.+)$", text, re.MULTILINE)
    assert responder_id is not None, text
    signer = world.certs[case.signer]
    if "-resp_key_id" in case.responder_options:
        key_hash = x509.SubjectKeyIdentifier.from_public_key(signer.public_key()).digest
        assert responder_id.group(1).strip() == key_hash.hex().upper()
        assert parsed.responder_key_hash == key_hash
    else:
        assert "CN = " in responder_id.group(1)
        assert parsed.responder_name == signer.subject

    # The response's own signature algorithm is the last one before any certificate.
    signature_part = text.split("\nCertificate:")[0]
    algorithms = re.findall(r"Signature Algorithm: (\S+)", signature_part)
    assert algorithms[-1] == case.signature_algorithm, text

    embedded = "-resp_no_certs" not in case.responder_options
    assert ("\nCertificate:" in text) == embedded, text
    assert [c.subject for c in parsed.certificates] == ([signer.subject] if embedded else [])

    statuses = re.findall(r"Cert Status: (\w+)", text)
    assert statuses == [INDEX_STATUS[name] for name in case.certs], text
    hashes_used = re.findall(r"Hash Algorithm: (\w+)", text.split("Signature Algorithm")[0])
    assert hashes_used == [case.cert_id_hash] * len(case.certs), text
    assert "Nonce" not in text


def run_cli(
    world: World, case: Case, response: Path, capsys: pytest.CaptureFixture[str]
) -> dict[str, object]:
    """``staplecheck verify --json`` on the response; its JSON and exit code agree."""
    capsys.readouterr()
    code = cli_main(
        [
            "verify",
            str(response),
            "--cert",
            str(world.cert(case.checked)),
            "--issuer",
            str(world.cert("intermediate")),
            "--json",
        ]
    )
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    assert code == (0 if out["status"] == "good" else 1)
    return out


# --- the differential test -------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_staplecheck_agrees_with_openssl(
    world: World, case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    response = make_response(world, case, tmp_path)
    check_response_shape(world, case, response)
    theirs = openssl_verdict(
        world,
        response,
        case.checked,
        lookup_hash=case.lookup_hash or case.cert_id_hash,
        trust=case.trust,
        verify_other=case.verify_other,
    )
    ours = validate_staple(
        response.read_bytes(),
        world.certs[case.checked],
        world.certs["intermediate"],
        now=None,  # openssl stamped thisUpdate with the wall clock
        cache=None,
    )

    assert ours.status is case.expected, ours.reason
    assert not theirs.time_errors, theirs.output  # openssl made it just now
    if case.openssl is None:
        assert theirs.as_staplecheck() is ours.status, (ours.reason, theirs.output)
    else:
        # A documented difference: OpenSSL's verdict is pinned so that a change in it
        # is noticed, and it must really differ from staplecheck's.
        assert (theirs.verified, theirs.status) == case.openssl, theirs.output
        assert theirs.as_staplecheck() is not ours.status

    if ours.status in {StapleStatus.GOOD, StapleStatus.REVOKED, StapleStatus.UNKNOWN}:
        assert_same_facts(ours, theirs)
    if case.via_cli:
        out = run_cli(world, case, response, capsys)
        assert out["status"] == ours.status.value
        assert out["serial_number"] == f"{world.certs[case.checked].serial_number:#x}"


def assert_same_facts(ours: StapleResult, theirs: OpenSSLVerdict) -> None:
    """Both tools read the same times and revocation details from the entry."""
    if theirs.status is None:
        return  # OpenSSL found no entry (a lookup difference): nothing to compare
    assert ours.this_update == theirs.this_update
    assert ours.next_update == theirs.next_update
    assert ours.this_update is not None
    # -ndays 1; openssl reads the clock once for each field, so allow a second's tick.
    assert ours.next_update is not None
    lifetime = ours.next_update - ours.this_update
    assert abs(lifetime - datetime.timedelta(days=1)) <= datetime.timedelta(seconds=1)
    assert ours.revocation_time == theirs.revocation_time
    assert ours.revocation_reason == theirs.revocation_reason


@pytest.mark.parametrize("name", list(REVOCATIONS))
def test_revoked_entries_carry_the_index_details(world: World, name: str, tmp_path: Path) -> None:
    """The revocation time and reason come from index.txt, through OpenSSL, intact."""
    case = Case(name, "intermediate", certs=(name,), expected=StapleStatus.REVOKED)
    response = make_response(world, case, tmp_path)
    result = validate_staple(
        response.read_bytes(), world.certs[name], world.certs["intermediate"], cache=None
    )
    assert result.status is StapleStatus.REVOKED
    assert result.revocation_time == world.revoked_at
    assert result.revocation_reason == REVOCATIONS[name][1]
    extensions = ocsp.load_der_ocsp_response(response.read_bytes()).single_extensions
    has_invalidity_date = any(
        e.oid == x509.oid.CRLEntryExtensionOID.INVALIDITY_DATE for e in extensions
    )
    assert has_invalidity_date == (name == "revoked-key-time")


def test_every_difference_is_explained() -> None:
    """Each pinned OpenSSL verdict comes with the reason, for the documentation."""
    pinned: list[tuple[str, object, str]] = [(c.id, c.openssl, c.difference) for c in CASES]
    pinned += [(c.id, c.openssl_as, c.difference) for c in TIME_CASES]
    for name, openssl, difference in pinned:
        assert (openssl is None) == (difference == ""), name
        assert (openssl is None) == (not name.startswith("difference-")), name


# --- the time rules, on backdated responses ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class TimeCase:
    """A response with chosen times, relative to the real clock.

    ``openssl ocsp`` stamps the current time, so these responses are made by
    staplecheck.testing with the same issuer key; OpenSSL still verifies them and
    applies its own time checks (OCSP_check_validity, 5 minutes of leeway like
    staplecheck's skew).
    """

    id: str
    this_update: datetime.timedelta
    next_update: datetime.timedelta | None
    expected: StapleStatus
    status: str = "good"
    revocation_reason: str | None = None
    status_age: int | None = None
    """OpenSSL's -status_age: its maximum age of thisUpdate, off by default."""
    openssl_as: StapleStatus | None = None
    """What OpenSSL's verdict maps to where its time rules differ."""
    difference: str = ""


HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
MINUTE = datetime.timedelta(minutes=1)

TIME_CASES = [
    TimeCase("fresh", -HOUR, DAY - HOUR, StapleStatus.GOOD),
    TimeCase("this-update-within-skew", 2 * MINUTE, DAY, StapleStatus.GOOD),
    TimeCase("this-update-in-the-future", HOUR, DAY, StapleStatus.INVALID),
    TimeCase("next-update-before-this-update", -MINUTE, -2 * MINUTE, StapleStatus.INVALID),
    TimeCase("past-next-update", -2 * DAY, -DAY, StapleStatus.STALE),
    TimeCase("unknown-past-next-update", -2 * DAY, -DAY, StapleStatus.STALE, status="unknown"),
    TimeCase(
        "certificate-hold-past-next-update",
        -2 * DAY,
        -DAY,
        StapleStatus.STALE,
        status="revoked",
        revocation_reason="certificateHold",
    ),
    TimeCase("no-next-update-fresh", -HOUR, None, StapleStatus.GOOD),
    TimeCase(
        "no-next-update-older-than-a-day-with-status-age",
        -2 * DAY,
        None,
        StapleStatus.STALE,
        status_age=86400,
    ),
    TimeCase(
        "older-than-max-age-with-status-age",
        -11 * DAY,
        30 * DAY,
        StapleStatus.STALE,
        status_age=864000,
    ),
    TimeCase(
        "difference-no-next-update-older-than-a-day",
        -2 * DAY,
        None,
        StapleStatus.STALE,
        openssl_as=StapleStatus.GOOD,
        difference=(
            "Without nextUpdate (and without -status_age) OpenSSL accepts a response of "
            "any age; staplecheck gives it a default lifetime of one day (DESIGN.md rule 5)."
        ),
    ),
    TimeCase(
        "difference-older-than-max-age",
        -11 * DAY,
        30 * DAY,
        StapleStatus.STALE,
        openssl_as=StapleStatus.GOOD,
        difference=(
            "OpenSSL has no maximum age unless -status_age is given; staplecheck refuses "
            "a thisUpdate older than 10 days even before nextUpdate (DESIGN.md rule 5)."
        ),
    ),
    TimeCase(
        "difference-revoked-past-next-update",
        -2 * DAY,
        -DAY,
        StapleStatus.REVOKED,
        status="revoked",
        revocation_reason="keyCompromise",
        openssl_as=StapleStatus.STALE,
        difference=(
            "OpenSSL flags an expired 'revoked' response like any expired one ('status "
            "expired'); staplecheck keeps a signed revocation final, certificateHold "
            "aside (DESIGN.md rule 5)."
        ),
    ),
]


@pytest.mark.parametrize("case", TIME_CASES, ids=lambda c: c.id)
def test_time_rules_agree_with_openssl(world: World, case: TimeCase, tmp_path: Path) -> None:
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    der = world.issuer.ocsp_response(
        world.certs["good"],
        case.status,
        this_update=now + case.this_update,
        next_update=None if case.next_update is None else now + case.next_update,
        revocation_reason=case.revocation_reason,
    )
    response = tmp_path / "response.der"
    response.write_bytes(der)
    options = () if case.status_age is None else ("-status_age", str(case.status_age))
    theirs = openssl_verdict(world, response, "good", options=options)
    ours = validate_staple(der, world.certs["good"], world.certs["intermediate"], cache=None)

    assert ours.status is case.expected, ours.reason
    assert theirs.verified, theirs.output
    assert theirs.status == case.status
    if case.openssl_as is None:
        assert theirs.as_staplecheck() is ours.status, (ours.reason, theirs.output)
    else:
        assert theirs.as_staplecheck() is case.openssl_as, theirs.output
        assert case.openssl_as is not ours.status


# --- an independent encoder: cryptography's OCSPResponseBuilder ----------------------


def _builder_response(pki: PKI, status: str, encoding: ocsp.OCSPResponderEncoding) -> bytes:
    issuer = pki.intermediate
    this_update = NOW - datetime.timedelta(hours=1)
    revoked = status == "revoked"
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=pki.leaf.cert,
            issuer=issuer.cert,
            algorithm=hashes.SHA256(),
            cert_status=ocsp.OCSPCertStatus[status.upper()],
            this_update=this_update,
            next_update=this_update + datetime.timedelta(days=1),
            revocation_time=this_update - datetime.timedelta(days=2) if revoked else None,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
        )
        .responder_id(encoding, issuer.cert)
    )
    key = issuer.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)  # the pki fixture's issuer is ECDSA
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("encoding", list(ocsp.OCSPResponderEncoding), ids=lambda e: e.name)
@pytest.mark.parametrize("status", ["good", "revoked", "unknown"])
def test_cryptography_builder_responses(
    pki: PKI, status: str, encoding: ocsp.OCSPResponderEncoding
) -> None:
    der = _builder_response(pki, status, encoding)
    # The builder really used a SHA-256 CertID and the requested ResponderID form.
    parsed = ocsp.load_der_ocsp_response(der)
    assert isinstance(parsed.hash_algorithm, hashes.SHA256)
    assert (parsed.responder_key_hash is not None) == (encoding is ocsp.OCSPResponderEncoding.HASH)

    result = validate_staple(der, pki.leaf.cert, pki.intermediate.cert, now=NOW, cache=None)

    assert result.status is StapleStatus(status), result.reason
    assert result.this_update == NOW - datetime.timedelta(hours=1)
    assert result.next_update == NOW + datetime.timedelta(hours=23)
    if status == "revoked":
        assert result.revocation_time == NOW - datetime.timedelta(days=2, hours=1)
        assert result.revocation_reason == "keyCompromise"
    else:
        assert result.revocation_time is None
    # The same bytes are no evidence for another certificate of the same issuer.
    other = validate_staple(
        der, pki.must_staple_leaf.cert, pki.intermediate.cert, now=NOW, cache=None
    )
    assert other.status is StapleStatus.INVALID
