"""Sphinx configuration: docs/ as a site (MyST Markdown pages, autodoc API reference).

Build it as CI does, strictly: ``python docs/build.py`` (capture the commands' output,
then ``sphinx-build -W --keep-going -n``). Every warning is an error, and nitpicky mode
makes every cross-reference that does not resolve one (docs/testing.md, "The docs
site").
"""

from __future__ import annotations

import sys
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import PycodeError
from sphinx.pycode import ModuleAnalyzer

import staplecheck

project = "staplecheck"
author = "staplecheck contributors"
copyright = "staplecheck contributors, MIT licence"
release = version = staplecheck.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_captured"]

# Markdown pages link to each other as `page.md#a-heading`, as GitHub shows them; MyST
# makes GitHub's heading slugs, so the same links resolve here, and a link to a page
# or heading that does not exist is a warning (so an error).
myst_heading_anchors = 6

# Every reference must resolve...
nitpicky = True
# ...except to other projects' objects (the standard library, cryptography, pyOpenSSL,
# urllib3, requests, httpx, aiohttp): CI reaches no documentation site to fetch their
# inventories, so these are not checked. Only names under these packages are let
# through; a misspelt staplecheck name still fails the build.
_EXTERNAL = (
    "datetime|os|collections|typing|ssl|socket|pathlib|enum|types|io|threading|asyncio"
    "|cryptography|x509|OpenSSL|SSL|urllib3|requests|httpx|httpcore|anyio|redis|sqlite3"
    "|aiohttp|yarl|multidict"
)
nitpick_ignore_regex = [
    ("py:.*", rf"(~?)({_EXTERNAL})(\..*)?"),
    # urllib3's response class, named as its module imports it (under TYPE_CHECKING).
    ("py:class", "BaseHTTPResponse"),
    # Private helpers that show in public signatures: Policy.mode's descriptor (its
    # value is a Mode), and the internal fetcher's answer (RevocationChecker's
    # ocsp_fetcher is for tests).
    ("py:class", r"staplecheck\._policy\._ModeField"),
    ("py:class", r"staplecheck\.revocation\._fetch\.FirstAnswer"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# Defaults as written in the source (SHARED_CACHE, not <StapleCache object at 0x...>,
# which Sphinx cannot parse back into a signature).
autodoc_preserve_defaults = True
# Methods without a docstring of their own are not documented with their base class's
# (httpx's handle_request docstring is not written for this site).
autodoc_inherit_docstrings = False

# The modules whose __all__ is the public API (docs/architecture.md), one page each in
# docs/reference/; docs/build.py checks that every name in them has an entry.
PUBLIC_MODULES = (
    "staplecheck",
    "staplecheck.httpx",
    "staplecheck.aiohttp",
    "staplecheck.revocation",
    "staplecheck.revocation.stores",
    "staplecheck.testing",
)

html_theme = "furo"
html_title = f"staplecheck {release}"


# autodoc lists a module's constants only when the module itself documents them; the
# constants the public modules re-export are named in the reference pages (autodata),
# and their docstrings come from the module that defines them.
def _home_docstring(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    if what != "data":
        return
    short = name.rpartition(".")[2]
    for modname, module in sorted(sys.modules.items()):
        if modname.partition(".")[0] != "staplecheck" or getattr(module, short, lines) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except PycodeError:
            continue
        if ("", short) in docs:
            lines[:] = list(docs[("", short)])
            return
    if type(obj).__module__ == "builtins":
        lines[:] = []  # str's or tuple's docstring says nothing about this constant


# staplecheck.revocation re-exports two classes that the package's page documents;
# documenting them twice is an error, so references to them under
# staplecheck.revocation resolve to the package's entries.
SAME_OBJECT = {
    "staplecheck.revocation.RevocationChecker": "staplecheck.RevocationChecker",
    "staplecheck.revocation.RevocationResult": "staplecheck.RevocationResult",
}


# Type aliases in the test helpers' signatures, documented on the staplecheck.testing
# page (they live in private modules, whose names Sphinx 8 looks them up under).
TESTING_TYPE_ALIASES = frozenset({"NextUpdate", "Revoked", "PrivateKey"})


def _same_object(app: Sphinx, env: Any, node: Any, contnode: Any) -> Any:
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    module = node.get("py:module") or ""
    reftype = node["reftype"]
    if target in TESTING_TYPE_ALIASES and module.startswith("staplecheck.testing"):
        # py:type entries: Sphinx 8's class role does not look for them, any role does.
        resolved, reftype = f"staplecheck.testing.{target}", "obj"
    else:
        if not target.startswith("staplecheck.") and module:
            target = f"{module}.{target}"
        # The class itself, or one of its members.
        for alias, entry in SAME_OBJECT.items():
            if target == alias or target.startswith(f"{alias}."):
                owner, member = entry, target[len(alias) :]
                break
        else:
            return None
        resolved = owner + member
    return env.get_domain("py").resolve_xref(
        env, node["refdoc"], app.builder, reftype, resolved, node, contnode
    )


def setup(app: Sphinx) -> None:
    app.connect("missing-reference", _same_object)
    app.connect("autodoc-process-docstring", _home_docstring)
