"""Test helpers for staplecheck and its users, in the spirit of trustme.

Build a throwaway PKI, issue server certificates (must-staple or not), make OCSP
responses of every kind, and serve
them from a local stapling TLS server (:class:`StaplingServer`)::

    ca = CA()                                # a root
    inter = ca.create_intermediate()
    server = inter.issue_cert("localhost", must_staple=True)
    staple = inter.ocsp_response(server, "revoked", revocation_reason="keyCompromise")
"""

from ._cases import POLICY_CASES, StapleCase
from ._ocsp import OCSPEntry, RawExtension, make_ocsp_response
from ._pki import CA, Identity, KeyType, generate_key
from ._responder import OCSPResponder
from ._server import StaplingServer

__all__ = [
    "CA",
    "POLICY_CASES",
    "Identity",
    "KeyType",
    "OCSPEntry",
    "OCSPResponder",
    "RawExtension",
    "StapleCase",
    "StaplingServer",
    "generate_key",
    "make_ocsp_response",
]
