"""``staplecheck check``'s revocation options: read and checked before any connection.

Every value comes from the command line or a file the user named, so every problem is
a usage error (exit 2) with one line that names the option and the file, never a
traceback. What the options mean is the :class:`~staplecheck.Policy`'s fallback
settings (docs/cli.md, docs/revocation.md); the check itself is the engine's.
"""

from __future__ import annotations

import argparse
import datetime
import os
import stat
import urllib.parse
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .._policy import FALLBACK_SOURCES, MAX_PINNED_RESPONDERS, Mode
from ..revocation._crl import MAX_CRL_BYTES, crl_der
from ..revocation._crlfiles import MAX_FILES
from ..revocation._fetch import MAX_PARALLEL
from ..revocation._plan import MAX_URL_CHARS
from ..revocation.stores import RedisStore, Store, StoreError, crl_key, open_store
from ..revocation.stores._interface import Miss, MissReason
from ..tls._pyopenssl import pem_or_der_certificates

__all__ = [
    "MAX_FALLBACK_TIMEOUT",
    "FallbackUsageError",
    "check_combinations",
    "check_crl_paths",
    "load_trusted_responders",
    "open_cache",
    "parse_fallback",
    "parse_fallback_timeout",
    "parse_ocsp_url",
    "sources_in_force",
]

MAX_FALLBACK_TIMEOUT = 300.0
"""The largest ``--fallback-timeout`` (``Policy.fallback_timeout``'s own bound)."""
_MAX_CERT_FILE_BYTES = 1024 * 1024


class FallbackUsageError(Exception):
    """A revocation option that cannot be used: exit 2 with this message."""


# --- argparse types ----------------------------------------------------------------------


def parse_fallback(text: str) -> tuple[str, ...]:
    """``ocsp``, ``crl``, ``ocsp,crl``, ``crl,ocsp`` or ``none`` (an empty tuple)."""
    words = [word.strip().lower() for word in text.split(",")]
    if words == ["none"]:
        return ()
    if "none" in words:
        raise argparse.ArgumentTypeError(f"'none' stands alone, not in a list: {text!r}")
    unknown = [word for word in words if word not in FALLBACK_SOURCES]
    if unknown:
        shown = ", ".join(repr(word) for word in unknown)
        raise argparse.ArgumentTypeError(
            f"unknown fallback source {shown}: choose from ocsp, crl, ocsp,crl, crl,ocsp or none"
        )
    if len(set(words)) != len(words):
        raise argparse.ArgumentTypeError(f"a fallback source is listed twice: {text!r}")
    return tuple(words)


def parse_fallback_timeout(text: str) -> float:
    """Seconds, more than 0 and at most :data:`MAX_FALLBACK_TIMEOUT`."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_FALLBACK_TIMEOUT:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(
            f"not a fallback time budget: {text!r} "
            f"(seconds, more than 0 and at most {MAX_FALLBACK_TIMEOUT:g})"
        )
    return value


def parse_ocsp_url(text: str) -> str:
    """An absolute ``http://`` (or ``https://``) URL with a host and nothing the fetcher
    would refuse later (credentials, a fragment, spaces or control characters)."""

    def bad(why: str) -> argparse.ArgumentTypeError:
        return argparse.ArgumentTypeError(f"not a usable OCSP responder URL {text[:200]!r}: {why}")

    if len(text) > MAX_URL_CHARS:
        raise bad(f"longer than {MAX_URL_CHARS} characters")
    if not text.isascii() or any(ch.isspace() or ord(ch) < 0x20 or ch == "\x7f" for ch in text):
        raise bad("spaces, control characters or non-ASCII (percent-encode them)")
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() not in ("http", "https"):
        raise bad("only http:// (and, with --allow-https-fetch, https://) responders are asked")
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as error:
        raise bad(str(error)) from None
    if not host:
        raise bad("no host")
    if parts.username is not None or parts.password is not None:
        raise bad("credentials in a URL are refused")
    if parts.fragment or text.endswith("#"):
        raise bad("a fragment")
    return text


# --- which options need which sources -----------------------------------------------------


def sources_in_force(mode: Mode, fallback: tuple[str, ...] | None) -> tuple[str, ...]:
    """The sources a policy with this mode and ``--fallback`` asks (``Policy.sources``)."""
    if fallback is not None:
        return fallback
    return FALLBACK_SOURCES if mode is Mode.HARD_FAIL else ()


def check_combinations(args: argparse.Namespace) -> None:
    """Refuse the combinations docs/cli.md lists: each would be ignored or cannot hold."""
    mode = Mode(args.policy)
    sources = sources_in_force(mode, args.fallback)
    if mode is Mode.OFF and args.fallback:
        raise FallbackUsageError(
            "--fallback needs a policy that checks revocation: 'off' checks nothing "
            "(use --policy soft-fail or hard-fail)"
        )
    if mode is Mode.MUST_STAPLE and args.fallback and not args.check_chain:
        raise FallbackUsageError(
            "--fallback under --policy must-staple is never asked: the server's "
            "certificate needs a good staple whatever the fallback says (add --check-chain "
            "to check the intermediates, or use --policy soft-fail or hard-fail)"
        )

    def needs(option: str, wanted: str | None) -> FallbackUsageError:
        if mode is Mode.OFF:
            return FallbackUsageError(f"{option} needs a fallback, and policy 'off' takes none")
        if wanted is None:
            return FallbackUsageError(
                f"{option} needs a fallback source (--fallback ocsp, crl or ocsp,crl; "
                "--policy hard-fail asks both by default)"
            )
        hard_fail = "" if args.fallback is not None else ", or --policy hard-fail"
        return FallbackUsageError(
            f"{option} needs {wanted} among the fallback sources, which are now "
            f"{','.join(sources) or 'none'} (use --fallback {wanted} or ocsp,crl{hard_fail})"
        )

    if args.check_chain and not sources:
        raise needs("--check-chain", None)
    for option, given in (
        ("--fallback-timeout", args.fallback_timeout is not None),
        ("--cache", args.cache is not None),
        ("--allow-https-fetch", args.allow_https_fetch),
    ):
        if given and not sources:
            raise needs(option, None)
    for option, given in (
        ("--ocsp-url", bool(args.ocsp_url)),
        ("--ocsp-get", args.ocsp_get),
        ("--ocsp-nonce", args.ocsp_nonce),
    ):
        if given and "ocsp" not in sources:
            raise needs(option, "ocsp")
    if args.crl and "crl" not in sources:
        raise needs("--crl", "crl")
    if mode is Mode.MUST_STAPLE and args.ocsp_url:
        raise FallbackUsageError(
            "--ocsp-url under --policy must-staple is never asked: it designates the "
            "responder for the server's certificate, which needs a good staple, not for "
            "the intermediates"
        )
    if len(args.ocsp_url) > MAX_PARALLEL:
        raise FallbackUsageError(f"at most {MAX_PARALLEL} --ocsp-url responders")
    for url in args.ocsp_url:
        if url.lower().startswith("https:") and not args.allow_https_fetch:
            raise FallbackUsageError(
                f"--ocsp-url {url[:200]}: an https:// responder needs --allow-https-fetch"
            )


# --- files -------------------------------------------------------------------------------


def _read(path: str, what: str, limit: int) -> bytes:
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise FallbackUsageError(f"{what} {path} is a directory, not a file")
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise FallbackUsageError(
            f"cannot read {what} {path}: {error.strerror or type(error).__name__}"
        ) from None
    if len(data) > limit:
        raise FallbackUsageError(f"{what} {path} is larger than {limit} bytes")
    return data


def load_trusted_responders(paths: Sequence[str]) -> tuple[bytes, ...]:
    """The DER of every certificate in the ``--trust-responder`` files (PEM, possibly
    several, or one DER certificate); at most :data:`MAX_PINNED_RESPONDERS` in all."""
    pinned: list[bytes] = []
    for path in paths:
        data = _read(path, "--trust-responder file", _MAX_CERT_FILE_BYTES)
        try:
            certs = pem_or_der_certificates(data)
        except ValueError:
            certs = []
        if not certs:
            raise FallbackUsageError(
                f"--trust-responder {path} holds no readable certificate (PEM or DER)"
            )
        for cert in certs:
            der = cert.public_bytes(Encoding.DER)
            if der not in pinned:
                pinned.append(der)
    if len(pinned) > MAX_PINNED_RESPONDERS:
        raise FallbackUsageError(
            f"--trust-responder: {len(pinned)} certificates, at most {MAX_PINNED_RESPONDERS}"
        )
    return tuple(pinned)


def check_crl_paths(paths: Sequence[str]) -> tuple[str, ...]:
    """The ``--crl`` paths, each a readable CRL file (DER or PEM) or a readable directory
    holding at least one. Files in a directory that are not CRLs (or another CA's) are
    the engine's to report, as attempts: a directory is read again on each check."""
    for path in paths:
        if os.path.isdir(path):
            try:
                names = sorted(name for name in os.listdir(path) if not name.startswith("."))
            except OSError as error:
                raise FallbackUsageError(
                    f"cannot read --crl directory {path}: {error.strerror or type(error).__name__}"
                ) from None
            found = False
            for name in names[:MAX_FILES]:
                inner = os.path.join(path, name)
                if os.path.isfile(inner):
                    try:
                        found = _is_crl(_read(inner, "CRL", MAX_CRL_BYTES))
                    except FallbackUsageError:
                        continue
                    if found:
                        break
            if not found:
                raise FallbackUsageError(f"--crl directory {path} holds no CRL (DER or PEM)")
        elif not _is_crl(_read(path, "--crl file", MAX_CRL_BYTES)):
            raise FallbackUsageError(f"--crl {path} is not a CRL (DER, or PEM 'X509 CRL')")
    return tuple(paths)


def _is_crl(data: bytes) -> bool:
    """Whether ``data`` parses as a CRL (DER or PEM): its shape only; the engine judges it."""
    try:
        x509.load_der_x509_crl(crl_der(data))
    except ValueError:
        return False
    return True


# --- the cache ---------------------------------------------------------------------------


def open_cache(spec: str) -> Store:
    """The store ``--cache SPEC`` names (``memory``, ``sqlite:PATH``, ``redis://...``),
    opened; a Redis store must answer now, or the check would run on misses alone."""
    try:
        store = open_store(spec)
    except (ValueError, StoreError) as error:
        raise FallbackUsageError(f"--cache: {error}") from None
    if isinstance(store, RedisStore):
        # A read of a key nobody writes: Redis answers (absent), or the store says why not.
        now = datetime.datetime.now(datetime.timezone.utc)
        probe = store.failure(crl_key("staplecheck-cli-probe:"), now=now)
        if isinstance(probe, Miss) and probe.reason is MissReason.UNAVAILABLE:
            store.close()
            # Not the spec itself: it may carry a password.
            raise FallbackUsageError(
                f"--cache: Redis at {store.host} port {store.port} (database {store.db}) "
                f"does not answer: {probe.detail}"
            )
    return store
