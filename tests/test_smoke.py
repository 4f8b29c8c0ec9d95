"""The package imports and its public surface is what __all__ says."""

import staplecheck


def test_public_names_resolve() -> None:
    for name in staplecheck.__all__:
        assert getattr(staplecheck, name) is not None
