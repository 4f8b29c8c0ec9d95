"""The pure core: judge one OCSP response against the certificates it is about.

No I/O and no global state beyond bounded memos: DER reading within fixed bounds
(``_der``, ``_shape``), signatures (``_signatures``), certificate facts
(``_certfacts``, ``_tlsfeature``), the time rules (``_times``), RFC 6960's rules
(``_validate``) and the verdict they produce (``_result``). The staple check in the
handshake, the live-OCSP fallback and ``staplecheck verify`` all judge with this.
Internal: import the public names from :mod:`staplecheck`.
"""
