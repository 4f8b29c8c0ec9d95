"""Property tests: mangled staples never crash the validator and never pass as good.

The starting points are real staples of every kind (good, revoked and unknown; signed
by the issuer or by a delegate, by name or by key; ECDSA, RSA, RSA-PSS and Ed25519;
SHA-1 and SHA-256 CertIDs; several entries in one response). Each test mutates their
DER (truncation, bit flips, byte insertion and deletion, splicing two staples, stacks
of these, and element-level edits that keep the DER framing well-formed so they get
past the parser) and checks two properties of ``validate_staple``:

1. It never raises: every input gives a :class:`StapleResult`.
2. It is sound. What must not happen is precisely this: a verdict other than
   ``invalid`` (or ``missing``) for bytes that are not a genuinely signed staple about
   that certificate. The signature covers only tbsResponseData, so a mutation outside
   it and outside the signature can legitimately leave a staple intact: a flipped bit
   in an embedded certificate the issuer-signed path never looks at, in the unused-bits
   octet of the signature BIT STRING, or in any other unsigned byte that still parses.
   Conversely, the verdict rests entirely on (tbsResponseData, signature): the
   entries, times and ResponderID are in the former, and every key here signed only
   the staples of this corpus. So a result other than invalid is allowed only when
   cryptography still parses the mutated bytes and finds the same tbsResponseData
   bytes and signature as a genuine staple of the corpus about the same certificate,
   and then the verdict must be that staple's verdict (a good one stays good, a revoked
   one revoked). In particular GOOD is only ever given to bytes that carry a genuinely
   good staple's signed content unchanged.

Validation runs with ``cache=None`` so every call examines the bytes afresh, at the
fixed ``NOW`` the corpus was made for. Hypothesis runs derandomized with no example
database, so CI explores the same examples on every run.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from staplecheck import StapleResult, StapleStatus, validate_staple
from staplecheck.testing import CA, Identity, KeyType, OCSPEntry, make_ocsp_response
from tests.conftest import NOW

# When a property fails, Hypothesis writes a patch with libcst, whose import raises a
# DeprecationWarning (mypy_extensions.TypedDict) that the suite's "warnings are errors"
# turns into a pytest INTERNALERROR hiding the failing example.
pytestmark = pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict is deprecated")

PROPERTY_SETTINGS = settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SIGNED_VERDICTS = {
    StapleStatus.GOOD,
    StapleStatus.REVOKED,
    StapleStatus.UNKNOWN,
    StapleStatus.STALE,
}


# --- the corpus ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Staple:
    """A genuine staple, the certificates it is judged for, and its verdict at NOW."""

    name: str
    der: bytes
    leaf: x509.Certificate
    issuer: x509.Certificate
    status: StapleStatus


@dataclasses.dataclass(frozen=True)
class _Variant:
    """How to make one staple of the corpus, and the verdict it must get."""

    name: str
    about: Identity
    expected: StapleStatus
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


def _staples_for(key_type: KeyType) -> list[Staple]:
    root = CA(key_type=key_type, name=f"{key_type} root", now=NOW)
    issuer = root.create_intermediate(key_type=key_type, name=f"{key_type} intermediate")
    leaf = issuer.issue_cert("leaf.example", key_type=key_type)
    # Same issuer, another certificate: its staples are no evidence about leaf.
    neighbour = issuer.issue_cert("neighbour.example")
    delegate = issuer.issue_responder(key_type=key_type)
    no_eku = issuer.issue_responder(key_type=key_type, ocsp_signing=False, name="no EKU")
    foreign_ca = CA(name=f"{key_type} foreign root", now=NOW)
    foreign = foreign_ca.issue_responder(name="foreign")
    good, revoked, unknown, invalid = (
        StapleStatus.GOOD,
        StapleStatus.REVOKED,
        StapleStatus.UNKNOWN,
        StapleStatus.INVALID,
    )
    variants = [
        _Variant("issuer-good", leaf, good),
        _Variant("issuer-revoked", leaf, revoked, {"revocation_reason": "keyCompromise"}),
        _Variant("issuer-unknown", leaf, unknown),
        _Variant(
            "delegate-good-by-key-sha256",
            leaf,
            good,
            {"responder": delegate, "responder_id": "key", "cert_id_hash": "sha256"},
        ),
        _Variant("delegate-revoked", leaf, revoked, {"responder": delegate}),
        _Variant(
            "delegate-unknown-no-next-update",
            leaf,
            unknown,
            {"responder": delegate, "next_update": None},
        ),
        _Variant("issuer-good-for-the-neighbour", neighbour, good),
        _Variant("delegate-revoked-for-the-neighbour", neighbour, revoked, {"responder": delegate}),
        # Issuer-signed, carrying certificates nobody needs, three entries, the leaf's
        # last: the entries before it are about other certificates.
        _Variant(
            "issuer-several-entries-with-certs",
            leaf,
            good,
            {
                "include_certs": [issuer.cert, root.cert],
                "extra_entries": [
                    OCSPEntry(serial_number=neighbour.cert.serial_number, status="revoked"),
                    OCSPEntry(serial_number=12345, status="unknown", cert_id_hash="sha256"),
                    OCSPEntry(serial_number=leaf.cert.serial_number),
                ],
                "cert": None,
            },
        ),
        # Properly signed, but by responders with no authority: invalid from the start,
        # and no mutation may make them anything else.
        _Variant("delegate-without-ocsp-signing-eku", leaf, invalid, {"responder": no_eku}),
        _Variant("responder-of-another-ca", leaf, invalid, {"responder": foreign}),
        # The leaf's serial number, but under another issuer's name and key.
        _Variant(
            "entry-names-another-issuer",
            leaf,
            invalid,
            {
                "cert": None,
                "extra_entries": [
                    OCSPEntry(serial_number=leaf.cert.serial_number, issuer=foreign_ca)
                ],
            },
        ),
    ]
    if key_type == "rsa":
        variants.append(_Variant("issuer-good-rsa-pss", leaf, good, {"rsa_pss": True}))
    if key_type == "ecdsa":
        variants.append(
            _Variant(
                "delegate-good-ecdsa-sha384",
                leaf,
                good,
                {"responder": delegate, "signature_hash": "sha384"},
            )
        )
    return [_make(key_type, issuer, variant) for variant in variants]


def _make(key_type: KeyType, issuer: CA, variant: _Variant) -> Staple:
    options = dict(variant.options)
    about: Identity | None = options.pop("cert", variant.about)
    status = variant.expected.value if variant.expected is not StapleStatus.INVALID else "good"
    return Staple(
        name=f"{key_type}/{variant.name}",
        der=make_ocsp_response(issuer, about, status, **options),
        leaf=variant.about.cert,
        issuer=issuer.cert,
        status=variant.expected,
    )


@functools.cache
def corpus() -> tuple[Staple, ...]:
    """Built once, on first use (key generation takes a moment)."""
    key_types: tuple[KeyType, ...] = ("ecdsa", "rsa", "ed25519")
    return tuple(s for key_type in key_types for s in _staples_for(key_type))


def _fingerprint(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _signed_content(der: bytes) -> tuple[bytes, bytes] | None:
    """(tbsResponseData, signature) as cryptography reads them; None if it cannot."""
    try:
        response = ocsp.load_der_ocsp_response(der)
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            return None
        return response.tbs_response_bytes, response.signature
    except ValueError:
        return None


@functools.cache
def genuine_verdicts() -> dict[tuple[bytes, bytes, bytes], StapleStatus]:
    """(leaf, tbsResponseData, signature) of every corpus staple → its verdict."""
    found: dict[tuple[bytes, bytes, bytes], StapleStatus] = {}
    for staple in corpus():
        signed = _signed_content(staple.der)
        assert signed is not None
        tbs, signature = signed
        found[(_fingerprint(staple.leaf), tbs, signature)] = staple.status
    return found


# --- the property ----------------------------------------------------------------------


def judge(der: bytes, staple: Staple) -> StapleResult:
    """Validate ``der`` for ``staple``'s certificate and check both properties."""
    result = validate_staple(der, staple.leaf, staple.issuer, now=NOW, cache=None)
    assert isinstance(result, StapleResult)
    assert result.reason
    if not der:
        assert result.status is StapleStatus.MISSING
    elif result.status in SIGNED_VERDICTS:
        signed = _signed_content(der)
        assert signed is not None, f"{result.status} for bytes cryptography cannot parse"
        tbs, signature = signed
        genuine = genuine_verdicts().get((_fingerprint(staple.leaf), tbs, signature))
        assert genuine is not None, (
            f"{result.status} ({result.reason}) for signed content that no genuine "
            "staple about this certificate carries"
        )
        assert result.status is genuine
    else:
        assert result.status is StapleStatus.INVALID
    return result


def judge_example(der: bytes, staple: Staple) -> None:
    """:func:`judge` inside a Hypothesis example, recording the verdict for
    ``--hypothesis-show-statistics`` (so a run shows that mutants do reach the
    signature check and beyond, not only the parser)."""
    event(f"verdict: {judge(der, staple).status.value}")


def _pick(data: st.DataObject, label: str = "staple") -> Staple:
    return data.draw(st.sampled_from(corpus()), label=label)


# --- mutations ---------------------------------------------------------------------------


def offsets(stop: int, start: int = 0) -> st.SearchStrategy[int]:
    """A position in ``range(start, stop)``, drawn evenly.

    ``st.integers`` favours small values and bounds: of 600 draws from 0..8000, about
    half land in the first tenth, so the signed middle of a staple would be barely
    touched. ``sampled_from`` draws the positions about evenly and still shrinks
    towards the start.
    """
    return st.sampled_from(range(start, stop))


def flip_bit(der: bytes, bit: int) -> bytes:
    out = bytearray(der)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


def insert_byte(der: bytes, position: int, value: int) -> bytes:
    return der[:position] + bytes([value]) + der[position:]


def delete_byte(der: bytes, position: int) -> bytes:
    return der[:position] + der[position + 1 :]


@st.composite
def mutation(draw: st.DrawFn, der: bytes) -> bytes:
    """One random edit of ``der``."""
    kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "overwrite"]))
    if kind == "flip" and der:
        return flip_bit(der, draw(offsets(len(der) * 8)))
    if kind == "insert":
        return insert_byte(der, draw(offsets(len(der) + 1)), draw(st.integers(0, 255)))
    if kind == "delete" and der:
        return delete_byte(der, draw(offsets(len(der))))
    if kind == "truncate":
        return der[: draw(offsets(len(der) + 1))]
    if der:  # overwrite a byte with any value
        out = bytearray(der)
        out[draw(offsets(len(der)))] = draw(st.integers(0, 255))
        return bytes(out)
    return der


# --- structure-aware mutations ------------------------------------------------------------
#
# Raw byte edits nearly always break the DER framing, so the parser stops them. These
# edits change one element of the tree (its content, its tag, or its place among its
# siblings) and re-encode every enclosing length, so the result is well-framed DER and
# reaches the rules behind the parser: the CertID match, the ResponderID, the
# delegate's certificate, the signature algorithm and its RSA-PSS parameters.


@dataclasses.dataclass
class Node:
    """One DER element. ``children`` is set for constructed elements and for OCTET
    STRINGs that wrap DER (the BasicOCSPResponse, extension values)."""

    tag: int
    content: bytes
    children: list[Node] | None


def _tlv(tag: int, content: bytes) -> bytes:
    if len(content) < 0x80:
        return bytes([tag, len(content)]) + content
    size = (len(content).bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + len(content).to_bytes(size, "big") + content


def encode(nodes: list[Node]) -> bytes:
    return b"".join(
        _tlv(n.tag, n.content if n.children is None else encode(n.children)) for n in nodes
    )


def parse_tree(data: bytes) -> list[Node] | None:
    """The elements of ``data``, or None unless it is exactly a run of DER elements
    (single-byte tags, minimal definite lengths: re-encoding gives the same bytes)."""
    nodes: list[Node] = []
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data) or data[offset] & 0x1F == 0x1F:
            return None
        tag, length, offset = data[offset], data[offset + 1], offset + 2
        if length & 0x80:
            count = length & 0x7F
            if not 0 < count <= 4 or offset + count > len(data):
                return None
            length = int.from_bytes(data[offset : offset + count], "big")
            offset += count
        if offset + length > len(data):
            return None
        content = data[offset : offset + length]
        offset += length
        wraps_der = tag & 0x20 or tag == 0x04
        children = parse_tree(content) if wraps_der and content else None
        nodes.append(Node(tag, content, children))
    return nodes if encode(nodes) == data else None


def _flatten(nodes: list[Node]) -> list[tuple[list[Node], int]]:
    """Every element as (the list holding it, its index), depth first."""
    found: list[tuple[list[Node], int]] = []
    for index, node in enumerate(nodes):
        found.append((nodes, index))
        if node.children is not None:
            found.extend(_flatten(node.children))
    return found


@st.composite
def structured_edit(draw: st.DrawFn, der: bytes) -> bytes:
    """One edit of one element of ``der``, lengths fixed up around it."""
    tree = parse_tree(der)
    assert tree is not None  # every edit below keeps the framing well-formed
    if not tree:
        return der  # an earlier edit dropped everything
    siblings, index = draw(st.sampled_from(_flatten(tree)), label="element")
    node = siblings[index]
    kind = draw(
        st.sampled_from(["content", "replace", "retag", "drop", "duplicate", "swap"]),
        label="edit",
    )
    if kind == "content" and node.children is None and node.content:
        edited = draw(mutation(node.content))
        siblings[index] = Node(node.tag, edited, None)
    elif kind == "replace":
        siblings[index] = Node(node.tag, draw(st.binary(max_size=12)), None)
    elif kind == "retag":
        tag = draw(st.integers(0, 255).filter(lambda t: t & 0x1F != 0x1F))
        siblings[index] = Node(
            tag, node.content if node.children is None else encode(node.children), None
        )
    elif kind == "drop":
        del siblings[index]
    elif kind == "duplicate":
        siblings.insert(index, node)
    elif kind == "swap" and len(siblings) > 1:
        other = draw(offsets(len(siblings)))
        siblings[index], siblings[other] = siblings[other], siblings[index]
    return encode(tree)


# --- tests ---------------------------------------------------------------------------------


def test_corpus_verdicts() -> None:
    """The starting points are what the properties assume: every one judged as made,
    good ones of each key type and signer among them."""
    for staple in corpus():
        result = judge(staple.der, staple)
        assert result.status is staple.status, (staple.name, result.reason)
    good = {s.name for s in corpus() if s.status is StapleStatus.GOOD}
    for key_type in ("ecdsa", "rsa", "ed25519"):
        assert f"{key_type}/issuer-good" in good
        assert f"{key_type}/delegate-good-by-key-sha256" in good
    assert len({s.der for s in corpus()}) == len(corpus())


def test_every_truncation_is_invalid() -> None:
    """Exhaustively: a strict prefix of DER is never DER (the outer length is wrong).
    The empty prefix is a missing staple."""
    for staple in corpus():
        for cut in range(len(staple.der)):
            result = judge(staple.der[:cut], staple)
            expected = StapleStatus.MISSING if cut == 0 else StapleStatus.INVALID
            assert result.status is expected, (staple.name, cut, result.reason)


@PROPERTY_SETTINGS
@given(st.data())
def test_single_bit_flip(data: st.DataObject) -> None:
    staple = _pick(data)
    bit = data.draw(offsets(len(staple.der) * 8), label="bit")
    judge_example(flip_bit(staple.der, bit), staple)


@PROPERTY_SETTINGS
@given(st.data())
def test_byte_insertion(data: st.DataObject) -> None:
    staple = _pick(data)
    position = data.draw(offsets(len(staple.der) + 1), label="position")
    value = data.draw(st.integers(0, 255), label="value")
    judge_example(insert_byte(staple.der, position, value), staple)


@PROPERTY_SETTINGS
@given(st.data())
def test_byte_deletion(data: st.DataObject) -> None:
    staple = _pick(data)
    position = data.draw(offsets(len(staple.der)), label="position")
    judge_example(delete_byte(staple.der, position), staple)


@PROPERTY_SETTINGS
@given(st.data())
def test_splice_two_staples(data: st.DataObject) -> None:
    """A prefix of one staple, then a slice of another, then optionally the rest of
    the first; judged for the certificates of both."""
    first = _pick(data, "first")
    second = _pick(data, "second")
    cut = data.draw(offsets(len(first.der) + 1), label="cut")
    start = data.draw(offsets(len(second.der) + 1), label="start")
    end = start + data.draw(offsets(len(second.der) - start + 1), label="length")
    resume = data.draw(st.none() | offsets(len(first.der) + 1, start=cut), label="resume")
    spliced = first.der[:cut] + second.der[start:end]
    if resume is not None:
        spliced += first.der[resume:]
    judge_example(spliced, first)
    judge_example(spliced, second)


@PROPERTY_SETTINGS
@given(st.data())
def test_stacked_mutations(data: st.DataObject) -> None:
    """Several edits in a row reach states no single edit does."""
    staple = _pick(data)
    der = staple.der
    for _ in range(data.draw(st.integers(1, 6), label="edits")):
        der = data.draw(mutation(der), label="edit")
    judge_example(der, staple)


@PROPERTY_SETTINGS
@given(st.data())
def test_structured_mutations(data: st.DataObject) -> None:
    """One to three element-level edits, each leaving well-framed DER."""
    staple = _pick(data)
    der = staple.der
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        der = data.draw(structured_edit(der))
    judge_example(der, staple)


def test_the_tree_round_trips() -> None:
    """The structure-aware mutator starts from the exact bytes, and sees inside the
    BasicOCSPResponse (wrapped in an OCTET STRING), so its edits reach the rules."""
    for staple in corpus():
        tree = parse_tree(staple.der)
        assert tree is not None
        assert encode(tree) == staple.der
        tbs = ocsp.load_der_ocsp_response(staple.der).tbs_response_bytes
        assert any(encode([siblings[i]]) == tbs for siblings, i in _flatten(tree))


# --- the soundness rule on two concrete examples -----------------------------------------


def _staple(name: str) -> Staple:
    return next(s for s in corpus() if s.name == name)


def test_a_flip_in_an_ignored_certificate_can_stay_good() -> None:
    """Why "unchanged bytes" is the wrong test: the issuer signs this staple itself, so
    the certificates it carries play no part. A flipped bit in the last byte of the
    embedded root certificate (inside its signature value) changes the bytes but not
    the signed content, and the staple is still genuinely good."""
    staple = _staple("ecdsa/issuer-several-entries-with-certs")
    root_der = (
        ocsp.load_der_ocsp_response(staple.der)
        .certificates[1]
        .public_bytes(serialization.Encoding.DER)
    )
    end_of_root = staple.der.index(root_der) + len(root_der)
    mutated = flip_bit(staple.der, (end_of_root - 1) * 8 + 7)
    assert mutated != staple.der
    assert _signed_content(mutated) == _signed_content(staple.der)
    assert judge(mutated, staple).status is StapleStatus.GOOD


@pytest.mark.parametrize("offset_from_start", [0, 40, 80])
def test_a_flip_in_the_signed_content_is_never_good(offset_from_start: int) -> None:
    """The other side of the rule: tbsResponseData is what the signature covers."""
    staple = _staple("ecdsa/issuer-good")
    tbs = ocsp.load_der_ocsp_response(staple.der).tbs_response_bytes
    position = staple.der.index(tbs) + offset_from_start
    for bit in range(8):
        result = judge(flip_bit(staple.der, position * 8 + bit), staple)
        assert result.status is StapleStatus.INVALID


def test_the_corpus_is_fresh_at_now() -> None:
    """The corpus was issued at NOW, so no verdict above is a time effect."""
    for staple in corpus():
        response = ocsp.load_der_ocsp_response(staple.der)
        assert response.produced_at_utc == NOW
        for entry in response.responses:
            assert NOW - datetime.timedelta(hours=2) < entry.this_update_utc <= NOW
