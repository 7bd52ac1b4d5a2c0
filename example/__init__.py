"""An example OpenID Provider built with pyop and Flask.

Run it with ``python -m example`` (see ``docs/example.rst``); build it in code
with :func:`example.app.create_app`.
"""

from .app import config_from_env, create_app

__all__ = ["create_app", "config_from_env"]
