"""Test helpers for staplecheck and its users, in the spirit of trustme.

Build a throwaway PKI, issue server certificates (must-staple or not), make OCSP
responses of every kind, and serve
them from a local stapling TLS server (:class:`StaplingServer`); make CRLs
(:func:`make_crl`) and serve them over HTTP (:class:`CRLServer`); answer OCSP requests
live (:class:`OCSPResponder`, or cfssl's own responder, :class:`CfsslResponder`)::

    ca = CA()                                # a root
    inter = ca.create_intermediate()
    server = inter.issue_cert("localhost", must_staple=True)
    staple = inter.ocsp_response(server, "revoked", revocation_reason="keyCompromise")
"""

from ._cases import POLICY_CASES, StapleCase
from ._cfssl import CfsslError, CfsslResponder
from ._crl import CRLEntry, make_crl
from ._crlserver import CRLServer
from ._ocsp import OCSPEntry, RawExtension, make_ocsp_response
from ._pki import CA, Identity, KeyType, generate_key
from ._responder import OCSPResponder
from ._server import StaplingServer

__all__ = [
    "CA",
    "POLICY_CASES",
    "CRLEntry",
    "CRLServer",
    "CfsslError",
    "CfsslResponder",
    "Identity",
    "KeyType",
    "OCSPEntry",
    "OCSPResponder",
    "RawExtension",
    "StapleCase",
    "StaplingServer",
    "generate_key",
    "make_crl",
    "make_ocsp_response",
]
