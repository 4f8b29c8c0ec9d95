"""Host names as urllib3 sends them: IDNA A-labels, lowercase, no trailing dot.

urllib3 2.x encodes a URL's host label by label: an ASCII label is lowercased, any
other goes through the ``idna`` package (IDNA 2008, ``strict=True, std3_rules=True``)
after lowercasing; without ``idna`` urllib3 refuses the URL. :func:`a_label` does
exactly that, so a name compared here is the name urllib3 connected to. The stdlib's
``"idna"`` codec is deliberately never used: it implements IDNA 2003, which encodes
some names differently (``ß`` becomes ``ss``), so staplecheck's answer would depend on
which package happens to be installed. Without ``idna`` a non-ASCII name is a
``ValueError``, as urllib3 refuses it.
"""

from __future__ import annotations

__all__ = ["a_label"]


def a_label(host: str) -> str:
    """``host`` as an A-label name: lowercase, no brackets, no trailing dot.

    ``ValueError`` when ``host`` is not ASCII and cannot be IDNA-encoded (or the
    ``idna`` package is missing).
    """
    name = host.strip("[]").rstrip(".")
    if name.isascii():
        return name.lower()
    try:
        import idna
    except ImportError:
        raise ValueError(
            f"{host!r} is an international name: encoding it as urllib3 does needs the "
            "idna package (pip install idna)"
        ) from None
    labels = []
    for label in name.split("."):
        if label.isascii():
            labels.append(label.lower())
            continue
        try:
            labels.append(idna.encode(label.lower(), strict=True, std3_rules=True).decode())
        except idna.IDNAError as error:
            raise ValueError(f"{host!r} is not a valid IDNA host name: {error}") from None
    return ".".join(labels)
