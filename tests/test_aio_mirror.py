"""pyop.aio mirrors the synchronous API: one protocol implementation, two front ends.

The coroutine methods of :class:`pyop.aio.AsyncProvider` and
:class:`pyop.aio.AsyncAuthorizationState` are generated (``python -m pyop.aio._codegen``)
from :class:`~pyop.provider.Provider` and :class:`~pyop.authz_state.AuthorizationState`;
these tests fail when the checked-in file drifts from the synchronous classes.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from pyop.aio import AsyncAuthorizationState, AsyncProvider
from pyop.aio._codegen import TARGET, generate
from pyop.authz_state import AuthorizationState
from pyop.provider import Provider


def test_generated_file_is_up_to_date() -> None:
    assert Path(TARGET).read_text(encoding="utf-8") == generate(), (
        "pyop/aio/_mirrored.py is out of date: run python -m pyop.aio._codegen")


def _public(cls: type) -> dict[str, object]:
    members: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        members.update({k: v for k, v in vars(klass).items() if not k.startswith("_")})
    return members


@pytest.mark.parametrize(("sync_cls", "async_cls"), [
    (Provider, AsyncProvider), (AuthorizationState, AsyncAuthorizationState)])
def test_every_public_method_has_a_coroutine_with_the_same_signature(
        sync_cls: type, async_cls: type) -> None:
    checked = 0
    for name, member in _public(sync_cls).items():
        if isinstance(member, property):
            assert isinstance(inspect.getattr_static(async_cls, name), property), name
        elif isinstance(member, staticmethod):
            assert inspect.signature(getattr(async_cls, name)) == inspect.signature(member)
        elif inspect.isfunction(member):
            mirrored = getattr(async_cls, name)
            assert inspect.iscoroutinefunction(mirrored), name
            assert inspect.signature(mirrored) == inspect.signature(member), name
            assert (mirrored.__doc__ or "").rstrip().endswith(f"{name}`."), name
            checked += 1
    assert checked >= 25


def test_the_generator_refuses_what_it_cannot_mirror() -> None:
    from pyop.aio._codegen import _Writer

    def with_object_default(self: object, x: object = object()) -> None:
        """Not mirrorable."""

    with pytest.raises(ValueError, match="not a literal"):
        _Writer().parameters(with_object_default, {})
