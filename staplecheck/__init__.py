"""staplecheck: make HTTPS clients check OCSP staples.

The core is pure: :func:`validate_staple` judges a staple, :class:`Policy` decides
whether a connection may proceed. TLS glue and integrations build on it.
"""

from ._errors import StapleError
from ._policy import Mode, Policy, PolicyLike, as_policy
from ._result import StapleResult, StapleStatus
from ._tlsfeature import has_must_staple
from ._validate import StapleCache, validate_staple

__version__ = "0.1.0"

__all__ = [
    "Mode",
    "Policy",
    "PolicyLike",
    "StapleCache",
    "StapleError",
    "StapleResult",
    "StapleStatus",
    "__version__",
    "as_policy",
    "has_must_staple",
    "validate_staple",
]
