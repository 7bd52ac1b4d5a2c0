"""pyop: an OpenID Connect Provider library.

The public names live in their modules, imported as in pyop 3's README
(``from pyop.provider import Provider`` ...); this package re-exports the most
used ones for convenience.
"""

from .authz_state import AuthorizationState
from .provider import Provider
from .subject_identifier import HashBasedSubjectIdentifierFactory
from .userinfo import Userinfo

__version__ = "4.0.0.dev0"

__all__ = [
    "AuthorizationState",
    "HashBasedSubjectIdentifierFactory",
    "Provider",
    "Userinfo",
    "__version__",
]
