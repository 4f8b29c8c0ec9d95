"""The fuzzing corpus: one fixed PKI, real staples of every kind, and what they mean.

``build(directory)`` makes a throwaway PKI at the fixed time :data:`NOW` (a root, the
issuing intermediate, two leaves it issued: ``leaf`` and ``must-staple-leaf``, and
delegated responders of every key type), then writes

- ``seeds/*.der``: the seed staples (good, revoked, unknown; issuer- and
  delegate-signed; ECDSA P-256/P-384/P-521, RSA PKCS#1 v1.5, RSA-PSS, Ed25519, Ed448;
  several entries; extensions critical or not; stale, future; unauthorized responders;
  unsuccessful statuses; and garbage-adjacent bytes: truncated, trailing bytes, BER
  lengths, the same signed content in broken envelopes);
- ``pki/``: the certificates and the leaves' keys (PEM), for the TLS harness;
- ``state.json``: every seed's declared verdict for each leaf, and the soundness
  table below.

The PKI is random, so a corpus directory (and any input the fuzzers saved while
using it) belongs with its ``state.json``: harnesses load the directory named by
``STAPLECHECK_FUZZ_STATE`` and build a fresh one only when it is unset.

The soundness rule (tests/test_property.py explains it): a staple's verdict rests on
its tbsResponseData and signature alone, and every key here signed only staples of
this corpus. So a signed verdict (good, revoked, unknown, stale) is allowed only for
bytes that cryptography parses and whose (tbsResponseData, signature) are those of a
seed whose declared verdict for that leaf is that verdict. Envelope seeds carry a
genuine seed's signed content with a broken wrapper (certificates dropped, algorithm
renamed) and are declared invalid; repairing the wrapper may legitimately give the
genuine verdict back, and the table says which one.

``python -m fuzz.corpus [DIRECTORY]`` builds a corpus (by default in fuzz/state, which
git ignores) and checks every seed's verdict.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from fuzz import der as dertree
from staplecheck import StapleResult, StapleStatus, validate_staple
from staplecheck.testing import CA, OCSPEntry, RawExtension, make_ocsp_response
from staplecheck.testing import _asn1 as asn1

__all__ = [
    "LEAF",
    "MS_LEAF",
    "NOW",
    "SIGNED_VERDICTS",
    "Corpus",
    "build",
    "content_key",
    "load",
    "load_or_build",
    "signed_content",
]

NOW = datetime.datetime(2026, 11, 21, 12, 0, 0, tzinfo=datetime.timezone.utc)
"""The time every staple is judged at, and the PKI's anchor time."""

LEAF = "leaf"
MS_LEAF = "must-staple-leaf"
ROLES = (LEAF, MS_LEAF)
HOSTS = {LEAF: "leaf.fuzz.example", MS_LEAF: "must-staple.fuzz.example"}
SERIALS = {LEAF: 0x5EED_0001_F022, MS_LEAF: 0x5EED_0002_F022}

SIGNED_VERDICTS = frozenset(
    {StapleStatus.GOOD, StapleStatus.REVOKED, StapleStatus.UNKNOWN, StapleStatus.STALE}
)
STATE_ENV = "STAPLECHECK_FUZZ_STATE"

_G, _R, _U, _S, _I = (
    StapleStatus.GOOD,
    StapleStatus.REVOKED,
    StapleStatus.UNKNOWN,
    StapleStatus.STALE,
    StapleStatus.INVALID,
)
_HOUR = datetime.timedelta(hours=1)
_DAY = datetime.timedelta(days=1)


# --- what a corpus is, once built ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Seed:
    name: str
    der: bytes
    expected: dict[str, StapleStatus | None]
    """The verdict for each leaf role; ``None``: not declared (garbage-adjacent bytes,
    judged by the soundness rule only)."""


@dataclasses.dataclass(frozen=True)
class Corpus:
    directory: Path
    root: x509.Certificate
    issuer: x509.Certificate
    leaves: dict[str, x509.Certificate]
    seeds: tuple[Seed, ...]
    genuine: dict[str, dict[str, StapleStatus]]
    """For each leaf role: content key of (tbsResponseData, signature) → the only
    signed verdict those bytes may get."""

    @property
    def seed_dir(self) -> Path:
        return self.directory / "seeds"

    def key_path(self, role: str) -> Path:
        return self.directory / "pki" / f"{role}.key"

    def chain_path(self, role: str) -> Path:
        """The leaf and the issuer, PEM, leaf first: what a server sends."""
        return self.directory / "pki" / f"{role}-chain.crt"

    @property
    def root_path(self) -> Path:
        return self.directory / "pki" / "root.crt"

    def good_seed(self, role: str) -> bytes:
        """A genuine good staple for the role's leaf (what a test server staples)."""
        return next(s.der for s in self.seeds if s.expected.get(role) is StapleStatus.GOOD)

    def seed(self, name: str) -> Seed:
        return next(s for s in self.seeds if s.name == name)


def content_key(tbs: bytes, signature: bytes) -> str:
    return hashlib.sha256(len(tbs).to_bytes(4, "big") + tbs + signature).hexdigest()


def signed_content(data: bytes) -> tuple[bytes, bytes] | None:
    """(tbsResponseData, signature) as cryptography reads them; None if it cannot."""
    try:
        response = ocsp.load_der_ocsp_response(data)
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            return None
        return response.tbs_response_bytes, response.signature
    except Exception:  # noqa: BLE001 - whatever cryptography refuses is "unparsable"
        return None


def load(directory: str | os.PathLike[str]) -> Corpus:
    directory = Path(directory)
    state = json.loads((directory / "state.json").read_text())
    if datetime.datetime.fromisoformat(state["now"]) != NOW:
        raise ValueError(f"{directory} was built for another time; rebuild it")

    def cert(pem: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate(pem.encode())

    seeds = tuple(
        Seed(
            name,
            (directory / "seeds" / f"{name}.der").read_bytes(),
            {role: StapleStatus(v) if v else None for role, v in expected.items()},
        )
        for name, expected in state["seeds"].items()
    )
    return Corpus(
        directory=directory,
        root=cert(state["root"]),
        issuer=cert(state["issuer"]),
        leaves={role: cert(pem) for role, pem in state["leaves"].items()},
        seeds=seeds,
        genuine={
            role: {key: StapleStatus(v) for key, v in table.items()}
            for role, table in state["genuine"].items()
        },
    )


def load_or_build() -> Corpus:
    """The corpus named by ``STAPLECHECK_FUZZ_STATE`` (built there if absent), or a
    fresh one in a temporary directory."""
    where = os.environ.get(STATE_ENV)
    if where and (Path(where) / "state.json").exists():
        return load(where)
    if not where:
        where = tempfile.mkdtemp(prefix="staplecheck-fuzz-")
        os.environ[STATE_ENV] = where  # so that child processes share it
    return build(where)


# --- envelope edits (outside tbsResponseData and the signature) --------------------------


def _edit_basic(der: bytes, edit: Callable[[list[dertree.Node]], None]) -> bytes:
    tree = dertree.parse(der)
    assert tree is not None
    edit(dertree.basic_response(tree))
    return dertree.encode(tree)


def _without_certs(der: bytes) -> bytes:
    def edit(basic: list[dertree.Node]) -> None:
        del basic[3:]

    return _edit_basic(der, edit)


def _with_certs(der: bytes, certs: list[x509.Certificate]) -> bytes:
    body = b"".join(c.public_bytes(serialization.Encoding.DER) for c in certs)
    node = dertree.Node(0xA0, dertree.tlv(0x30, body))

    def edit(basic: list[dertree.Node]) -> None:
        basic[3:] = [node]

    return _edit_basic(der, edit)


def _with_algorithm(der: bytes, algorithm: bytes) -> bytes:
    def edit(basic: list[dertree.Node]) -> None:
        basic[1] = dertree.Node(0x30, algorithm[2:])  # a short SEQUENCE: strip its header

    assert algorithm[0] == 0x30
    assert algorithm[1] < 0x80
    return _edit_basic(der, edit)


def _with_unused_bits(der: bytes, unused: int) -> bytes:
    def edit(basic: list[dertree.Node]) -> None:
        bits = basic[2]
        content = bits.content
        basic[2] = dertree.Node(0x03, bytes([unused]) + content[1:])

    return _edit_basic(der, edit)


def _with_pss_salt(der: bytes, salt: int) -> bytes:
    def edit(basic: list[dertree.Node]) -> None:
        params = basic[1].children[1].children  # type: ignore[index]
        assert params is not None
        for index, node in enumerate(params):
            if node.tag == 0xA2:
                params[index] = dertree.Node(0xA2, asn1.integer(salt))

    return _edit_basic(der, edit)


def _outer_reframed(der: bytes, header: Callable[[bytes], bytes], trailer: bytes = b"") -> bytes:
    tree = dertree.parse(der)
    assert tree is not None
    content = dertree.encode(tree[0].children or [])
    return header(content) + content + trailer


# --- building -----------------------------------------------------------------------------


def build(directory: str | os.PathLike[str]) -> Corpus:
    """Make the PKI and the seeds in ``directory``; check every declared verdict."""
    directory = Path(directory)
    (directory / "seeds").mkdir(parents=True, exist_ok=True)
    (directory / "pki").mkdir(exist_ok=True)

    root = CA(name="staplecheck fuzz root", now=NOW)
    issuer = root.create_intermediate(name="staplecheck fuzz intermediate")
    leaf = issuer.issue_cert(HOSTS[LEAF], serial_number=SERIALS[LEAF])
    ms_leaf = issuer.issue_cert(HOSTS[MS_LEAF], serial_number=SERIALS[MS_LEAF], must_staple=True)
    neighbour = issuer.issue_cert("neighbour.fuzz.example")

    def responder(key_type: Any, name: str, **options: Any) -> Any:
        return issuer.issue_responder(key_type=key_type, name=f"fuzz responder {name}", **options)

    d_p256 = responder("ecdsa", "P-256")
    d_p384 = responder("ecdsa-p384", "P-384")
    d_p521 = responder("ecdsa-p521", "P-521")
    d_rsa = responder("rsa", "RSA")
    d_ed25519 = responder("ed25519", "Ed25519")
    d_ed448 = responder("ed448", "Ed448")
    d_no_eku = responder("ecdsa", "without OCSPSigning", ocsp_signing=False)
    d_expired = responder("ecdsa", "expired", not_before=NOW - 30 * _DAY, not_after=NOW - _DAY)
    d_not_yet = responder("ecdsa", "not yet valid", not_before=NOW + _DAY)
    d_dsa = responder("dsa", "DSA")
    d_k1 = responder("ecdsa-secp256k1", "secp256k1")
    d_by_root = root.issue_responder(name="fuzz responder issued by the root")
    foreign_ca = CA(name="staplecheck fuzz foreign root", now=NOW)
    d_foreign = foreign_ca.issue_responder(name="fuzz foreign responder")

    seeds: list[Seed] = []

    def add(name: str, data: bytes, on_leaf: StapleStatus | None, on_ms: Any = _I) -> bytes:
        seeds.append(Seed(name, data, {LEAF: on_leaf, MS_LEAF: on_ms}))
        return data

    def staple(about: Any = leaf, status: str = "good", **options: Any) -> bytes:
        return make_ocsp_response(issuer, about, status, **options)

    def ext(oid: str, critical: bool, value: bytes = b"\x05\x00") -> RawExtension:
        return RawExtension(oid=oid, critical=critical, value=value)

    nonce = "1.3.6.1.5.5.7.48.1.2"
    nonce_value = asn1.octet_string(b"\x42" * 16)

    # Issuer-signed (ECDSA P-256), every status and CertID hash.
    issuer_good = add("issuer-good", staple(), _G)
    add("issuer-good-by-key", staple(responder_id="key"), _G)
    for hash_name in ("sha256", "sha384", "sha512"):
        add(f"issuer-good-certid-{hash_name}", staple(cert_id_hash=hash_name), _G)
    add("issuer-good-certid-sha224", staple(cert_id_hash="sha224"), _I)
    add("issuer-good-certid-md5", staple(cert_id_hash="md5"), _I)
    for hash_name in ("sha1", "sha384", "sha512"):
        add(f"issuer-good-ecdsa-{hash_name}", staple(signature_hash=hash_name), _G)
    add("issuer-good-no-next-update", staple(this_update=NOW - _HOUR, next_update=None), _G)
    add("issuer-good-with-chain", staple(include_certs=[issuer.cert, root.cert]), _G)
    add("issuer-revoked", staple(status="revoked", revocation_reason="keyCompromise"), _R)
    add("issuer-revoked-no-reason", staple(status="revoked"), _R)
    add("issuer-revoked-hold", staple(status="revoked", revocation_reason="certificateHold"), _R)
    add("issuer-unknown", staple(status="unknown"), _U)

    # Delegated responders of every key type and algorithm.
    delegate_p256 = add("delegate-p256-good", staple(responder=d_p256), _G)
    add("delegate-p256-good-by-key", staple(responder=d_p256, responder_id="key"), _G)
    add("delegate-p256-revoked", staple(status="revoked", responder=d_p256), _R)
    add("delegate-p256-unknown", staple(status="unknown", responder=d_p256), _U)
    add("delegate-p384-good", staple(responder=d_p384, signature_hash="sha384"), _G)
    add(
        "delegate-p521-good-by-key",
        staple(responder=d_p521, signature_hash="sha512", responder_id="key"),
        _G,
    )
    add("delegate-rsa-good", staple(responder=d_rsa), _G)
    add(
        "delegate-rsa-sha1-revoked",
        staple(status="revoked", responder=d_rsa, signature_hash="sha1"),
        _R,
    )
    rsa_pss = add("delegate-rsa-pss-good", staple(responder=d_rsa, rsa_pss=True), _G)
    add(
        "delegate-rsa-pss-sha512-good-by-key",
        staple(responder=d_rsa, rsa_pss=True, signature_hash="sha512", responder_id="key"),
        _G,
    )
    add("delegate-ed25519-good", staple(responder=d_ed25519), _G)
    add("delegate-ed25519-unknown", staple(status="unknown", responder=d_ed25519), _U)
    add("delegate-ed448-good", staple(responder=d_ed448, responder_id="key"), _G)
    add("delegate-ed448-revoked", staple(status="revoked", responder=d_ed448), _R)

    # Several entries.
    other = SERIALS[LEAF] + 1
    add(
        "multi-leaf-last-good",
        staple(
            about=None,
            include_certs=[issuer.cert, root.cert],
            extra_entries=[
                OCSPEntry(serial_number=neighbour.cert.serial_number, status="revoked"),
                OCSPEntry(serial_number=other, status="unknown", cert_id_hash="sha256"),
                OCSPEntry(serial_number=SERIALS[LEAF]),
            ],
        ),
        _G,
    )
    add(
        "multi-leaf-good-and-revoked",
        staple(extra_entries=[OCSPEntry(serial_number=SERIALS[LEAF], status="revoked")]),
        _R,
    )
    add(
        "multi-leaf-unknown-and-good-sha256",
        staple(
            status="unknown",
            extra_entries=[OCSPEntry(serial_number=SERIALS[LEAF], cert_id_hash="sha256")],
        ),
        _G,
    )
    add(
        "multi-both-leaves",
        staple(
            responder=d_p256,
            extra_entries=[OCSPEntry(serial_number=SERIALS[MS_LEAF], status="revoked")],
        ),
        _G,
        _R,
    )
    add(
        "multi-critical-extension-in-second-entry",
        staple(extra_entries=[OCSPEntry(serial_number=other, extensions=[ext("1.2.3.4.5", True)])]),
        _I,
    )
    add(
        "multi-entry-under-another-issuer",
        staple(
            about=None,
            extra_entries=[OCSPEntry(serial_number=SERIALS[LEAF], issuer=foreign_ca)],
        ),
        _I,
    )

    # Extensions.
    add("ext-nonce", staple(extensions=[ext(nonce, False, nonce_value)]), _G)
    add("ext-critical-nonce", staple(extensions=[ext(nonce, True, nonce_value)]), _G)
    add("ext-unknown-noncritical", staple(extensions=[ext("1.2.3.4.5", False)]), _G)
    add("ext-unknown-critical", staple(extensions=[ext("1.2.3.4.5", True)]), _I)
    add("ext-single-unknown-critical", staple(single_extensions=[ext("1.2.3.4.6", True)]), _I)
    add(
        "ext-single-crl-reason-critical",
        staple(status="revoked", single_extensions=[ext("2.5.29.21", True, b"\x0a\x01\x01")]),
        _R,
    )

    # Time.
    add(
        "stale-past-next-update", staple(this_update=NOW - 3 * _DAY, next_update=NOW - 2 * _DAY), _S
    )
    add("stale-no-next-update", staple(this_update=NOW - 2 * _DAY, next_update=None), _S)
    add("stale-max-age", staple(this_update=NOW - 11 * _DAY, next_update=NOW + _DAY), _S)
    add("stale-unknown", staple(status="unknown", this_update=NOW - 3 * _DAY), _S)
    add(
        "stale-revoked-stays-revoked",
        staple(status="revoked", revocation_reason="keyCompromise", this_update=NOW - 30 * _DAY),
        _R,
    )
    add(
        "stale-certificate-hold",
        staple(status="revoked", revocation_reason="certificateHold", this_update=NOW - 30 * _DAY),
        _S,
    )
    add("time-within-skew-future", staple(this_update=NOW + datetime.timedelta(minutes=4)), _G)
    add(
        "time-within-skew-past",
        staple(this_update=NOW - _DAY, next_update=NOW - datetime.timedelta(minutes=4)),
        _G,
    )
    add("time-future", staple(this_update=NOW + _HOUR), _I)
    add("time-next-before-this", staple(next_update=NOW - _HOUR), _I)
    add("time-delegate-stale", staple(responder=d_ed25519, this_update=NOW - 3 * _DAY), _S)

    # Responders without authority.
    add("unauthorized-no-ocsp-eku", staple(responder=d_no_eku), _I)
    add("unauthorized-expired-delegate", staple(responder=d_expired), _I)
    add("unauthorized-not-yet-valid-delegate", staple(responder=d_not_yet), _I)
    add("unauthorized-dsa-delegate", staple(responder=d_dsa), _I)
    add("unauthorized-secp256k1-delegate", staple(responder=d_k1), _I)
    add("unauthorized-delegate-of-the-root", staple(responder=d_by_root), _I)
    add("unauthorized-foreign-delegate", staple(responder=d_foreign), _I)
    add("unauthorized-foreign-ca", staple(responder=foreign_ca), _I)
    add("unauthorized-the-leaf-itself", staple(responder=leaf, responder_id="key"), _I)
    add("unauthorized-root-signs", staple(responder=root), _I)
    add("bad-signature", staple(corrupt_signature=True), _I)
    # The signatureAlgorithm is outside the signed data: a wrong label around a genuine
    # signature is an envelope of issuer-good (relabelling it right gives good back,
    # which a 10-minute fuzz run found when these seeds carried signatures of their own
    # that the table did not know).
    for name, oid in (("claims-ed25519", "1.3.101.112"), ("unknown", "1.2.3.4.5.6")):
        add(f"bad-algorithm-{name}", _with_algorithm(issuer_good, asn1.sequence(asn1.oid(oid))), _I)

    # Other certificates.
    add("neighbour-good", staple(about=neighbour), _I)
    add("ms-leaf-good", staple(about=ms_leaf), _I, _G)
    add("ms-leaf-delegate-good", staple(about=ms_leaf, responder=d_ed448), _I, _G)
    add("ms-leaf-revoked", staple(about=ms_leaf, status="revoked"), _I, _R)
    add("ms-leaf-unknown", staple(about=ms_leaf, status="unknown", responder=d_rsa), _I, _U)
    add("ms-leaf-stale", staple(about=ms_leaf, this_update=NOW - 3 * _DAY), _I, _S)

    # Unsuccessful responses.
    for response_status in (
        "malformedRequest",
        "internalError",
        "tryLater",
        "sigRequired",
        "unauthorized",
    ):
        add(f"status-{response_status}", staple(response_status=response_status), _I)

    # The same signed content in other envelopes.
    add("envelope-delegate-certs-dropped", _without_certs(delegate_p256), _I)
    add("envelope-delegate-cert-swapped", _with_certs(delegate_p256, [d_no_eku.cert]), _I)
    add(
        "envelope-delegate-among-others",
        _with_certs(delegate_p256, [root.cert, leaf.cert, d_no_eku.cert, d_p256.cert]),
        _G,
    )
    add("envelope-delegate-twice", _with_certs(delegate_p256, [d_p256.cert, d_p256.cert]), _G)
    add(
        "envelope-algorithm-renamed",
        _with_algorithm(issuer_good, asn1.sequence(asn1.oid("1.2.840.10045.4.3.3"))),
        _I,
    )
    add("envelope-pss-salt-changed", _with_pss_salt(rsa_pss, 48), _I)

    # Garbage-adjacent: judged by the soundness rule only.
    add("garbage-empty-sequence", b"\x30\x00", _I)
    add("garbage-successful-without-body", b"\x30\x03\x0a\x01\x00", _I)
    add("garbage-truncated", issuer_good[: len(issuer_good) // 2], _I)
    add("garbage-trailing-byte", issuer_good + b"\x00", _I)
    # Valid DER only when the signature's last bit is 0; then it is the same signed
    # content and may stay good (the unused-bits octet is not signed).
    add("garbage-signature-unused-bits", _with_unused_bits(issuer_good, 1), None)
    add(
        "garbage-ber-indefinite-length",
        _outer_reframed(issuer_good, lambda _: b"\x30\x80", b"\x00\x00"),
        _I,
    )
    add(
        "garbage-non-minimal-length",
        _outer_reframed(issuer_good, lambda c: b"\x30\x83" + len(c).to_bytes(3, "big")),
        _I,
    )
    tbs_at = issuer_good.index(ocsp.load_der_ocsp_response(issuer_good).tbs_response_bytes)
    flipped = bytearray(issuer_good)
    flipped[tbs_at + 30] ^= 0x01
    add("garbage-tbs-bit-flip", bytes(flipped), _I)

    return _save(directory, root, issuer, {LEAF: leaf, MS_LEAF: ms_leaf}, seeds)


def _save(
    directory: Path, root: CA, issuer: CA, leaves: dict[str, Any], seeds: list[Seed]
) -> Corpus:
    def pem(cert: x509.Certificate) -> str:
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    genuine: dict[str, dict[str, StapleStatus]] = {role: {} for role in ROLES}
    for seed in seeds:
        for role, status in seed.expected.items():
            signed = signed_content(seed.der)
            if status in SIGNED_VERDICTS:
                assert signed is not None, seed.name
                key = content_key(*signed)
                known = genuine[role].setdefault(key, status)
                assert known is status, f"{seed.name}: signed content judged twice"
    for seed in seeds:
        (directory / "seeds" / f"{seed.name}.der").write_bytes(seed.der)
    (directory / "pki" / "root.crt").write_text(pem(root.cert))
    for role, identity in leaves.items():
        (directory / "pki" / f"{role}-chain.crt").write_text(pem(identity.cert) + pem(issuer.cert))
        (directory / "pki" / f"{role}.key").write_bytes(identity.private_key_pem)
    state = {
        "now": NOW.isoformat(),
        "root": pem(root.cert),
        "issuer": pem(issuer.cert),
        "leaves": {role: pem(identity.cert) for role, identity in leaves.items()},
        "seeds": {
            s.name: {role: v.value if v else None for role, v in s.expected.items()} for s in seeds
        },
        "genuine": {
            role: {key: v.value for key, v in table.items()} for role, table in genuine.items()
        },
    }
    (directory / "state.json").write_text(json.dumps(state, indent=1))
    corpus = load(directory)
    check(corpus)
    return corpus


def check(corpus: Corpus) -> None:
    """Every seed gets its declared verdict, and passes the soundness rule, for both
    leaves. Raises AssertionError naming the seed otherwise."""
    from fuzz.oracle import violation  # the oracle imports this module

    for seed in corpus.seeds:
        for role, expected in seed.expected.items():
            leaf = corpus.leaves[role]
            result = validate_staple(seed.der, leaf, corpus.issuer, now=NOW, cache=None)
            assert isinstance(result, StapleResult)
            if expected is not None:
                assert result.status is expected, (
                    f"seed {seed.name} for {role}: {result.status.value} ({result.reason}), "
                    f"declared {expected.value}"
                )
            problem = violation(corpus, role, seed.der, result)
            assert problem is None, f"seed {seed.name} for {role}: {problem}"


def main(argv: list[str]) -> int:
    if len(argv) > 2:
        print("usage: python -m fuzz.corpus [DIRECTORY (default: fuzz/state)]", file=sys.stderr)
        return 2
    corpus = build(argv[1] if len(argv) == 2 else Path(__file__).parent / "state")
    kinds: dict[str, int] = {}
    for seed in corpus.seeds:
        status = seed.expected[LEAF]
        name = status.value if status else "undeclared"
        kinds[name] = kinds.get(name, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"{len(corpus.seeds)} seeds in {corpus.seed_dir} (for the leaf: {summary})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
