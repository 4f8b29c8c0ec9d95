"""A DER element tree: parse, edit, re-encode with every enclosing length fixed up.

Used to derive "wrapper" seeds (the same signed content in another envelope) and by
the structure-aware mutator, whose edits keep the framing well-formed so that they
get past the parser and reach the rules behind it.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from staplecheck.testing._asn1 import header, tlv

__all__ = [
    "Element",
    "Node",
    "basic_response",
    "encode",
    "flatten",
    "header",
    "parse",
    "replace",
    "scan",
    "tlv",
]


@dataclasses.dataclass
class Node:
    """One DER element. ``children`` is set for constructed elements, and for OCTET
    STRINGs and BIT STRINGs (after their unused-bits octet) that wrap DER."""

    tag: int
    content: bytes
    children: list[Node] | None = None
    bit_prefix: bytes = b""
    """The unused-bits octet of a BIT STRING whose remaining content is DER."""

    def der(self) -> bytes:
        return encode([self])


def encode(nodes: list[Node]) -> bytes:
    return b"".join(
        tlv(n.tag, n.content if n.children is None else n.bit_prefix + encode(n.children))
        for n in nodes
    )


def parse(data: bytes, depth: int = 0) -> list[Node] | None:
    """The elements of ``data``, or None unless it is exactly a run of DER elements
    (single-byte tags, minimal definite lengths: re-encoding gives the same bytes)."""
    if depth > 24:
        return None
    nodes: list[Node] = []
    offset = 0
    end = len(data)
    while offset < end:
        if offset + 2 > end or data[offset] & 0x1F == 0x1F:
            return None
        tag, length, offset = data[offset], data[offset + 1], offset + 2
        if length & 0x80:
            count = length & 0x7F
            if not 0 < count <= 3 or offset + count > end or data[offset] == 0:
                return None
            length = int.from_bytes(data[offset : offset + count], "big")
            if length < 0x80:
                return None
            offset += count
        if offset + length > end:
            return None
        content = data[offset : offset + length]
        offset += length
        node = Node(tag, content)
        if content and (tag & 0x20 or tag == 0x04):
            node.children = parse(content, depth + 1)  # None: kept as opaque bytes
        elif tag == 0x03 and len(content) > 2 and content[0] == 0 and content[1] == 0x30:
            inner = parse(content[1:], depth + 1)
            if inner is not None:
                node.children, node.bit_prefix = inner, content[:1]
        nodes.append(node)
    return nodes


def flatten(nodes: list[Node]) -> list[tuple[list[Node], int]]:
    """Every element as (the list holding it, its index), depth first."""
    found: list[tuple[list[Node], int]] = []
    for index, node in enumerate(nodes):
        found.append((nodes, index))
        if node.children is not None:
            found.extend(flatten(node.children))
    return found


def basic_response(tree: list[Node]) -> list[Node]:
    """The elements of the BasicOCSPResponse in a parsed OCSPResponse (tbsResponseData,
    signatureAlgorithm, signature, [0] certs?), as a list that may be edited in place."""
    response_bytes = tree[0].children[1].children[0].children  # type: ignore[index]
    basic = response_bytes[1].children[0].children  # type: ignore[index]
    assert basic is not None
    return basic


# --- a flat view, for the mutator: spans instead of a tree, no copies ----------------


class Element(NamedTuple):
    """Where one element lies in the bytes: tag at ``start``, content from ``body`` to
    ``end``, and the index of the enclosing element (-1 at the top)."""

    tag: int
    start: int
    body: int
    end: int
    parent: int


def scan(data: bytes) -> list[Element] | None:
    """Every element of ``data``, depth first (as :func:`parse` sees them), or None
    unless ``data`` is a run of DER elements."""
    found: list[Element] = []
    return found if _scan(data, 0, len(data), -1, 0, found) else None


def _scan(data: bytes, pos: int, end: int, parent: int, depth: int, out: list[Element]) -> bool:
    if depth > 24:
        return False
    while pos < end:
        if pos + 2 > end:
            return False
        tag = data[pos]
        if tag & 0x1F == 0x1F:
            return False
        length = data[pos + 1]
        body = pos + 2
        if length & 0x80:
            count = length & 0x7F
            if not 0 < count <= 3 or body + count > end or data[body] == 0:
                return False
            length = int.from_bytes(data[body : body + count], "big")
            if length < 0x80:
                return False
            body += count
        stop = body + length
        if stop > end:
            return False
        index = len(out)
        out.append(Element(tag, pos, body, stop, parent))
        inner = -1
        if length and (tag & 0x20 or tag == 0x04):
            inner = body
        elif tag == 0x03 and length > 2 and data[body] == 0 and data[body + 1] == 0x30:
            inner = body + 1
        if inner >= 0:
            mark = len(out)
            if not _scan(data, inner, stop, index, depth + 1, out):
                del out[mark:]  # not DER inside: opaque content
        pos = stop
    return True


def replace(
    data: bytes, elements: list[Element], parent: int, start: int, end: int, new: bytes
) -> bytes:
    """``data`` with ``data[start:end]`` (inside the content of element ``parent``, or
    at the top for -1) replaced by ``new``, and every enclosing length fixed up."""
    out = bytearray(data)
    out[start:end] = new
    delta = len(new) - (end - start)
    while parent >= 0 and delta:
        element = elements[parent]
        fixed = header(element.tag, element.end - element.body + delta)
        out[element.start : element.body] = fixed
        delta += len(fixed) - (element.body - element.start)
        parent = element.parent
    return bytes(out)
