"""The provider's endpoints, one module each.

Every handler takes the :class:`~pyop.context.ProviderContext` and the request as the
host received it, and returns an ``oic`` message or raises a :mod:`pyop.exceptions`
error. :class:`~pyop.provider.Provider` calls them; hosts call the provider.

* :mod:`pyop.endpoints.authorization` -- OIDC Core 3.1.2, 3.2.2, 3.3.2;
* :mod:`pyop.endpoints.token` -- RFC 6749 3.2, OIDC Core 3.1.3 (grants: :mod:`pyop.grants`);
* :mod:`pyop.endpoints.token_management` -- RFC 7662, RFC 7009;
* :mod:`pyop.endpoints.userinfo` -- OIDC Core 5.3;
* :mod:`pyop.endpoints.registration` -- OIDC Dynamic Registration 3-4, RFC 7591, RFC 7592;
* :mod:`pyop.endpoints.end_session` -- OIDC RP-Initiated Logout 1.0;
* :mod:`pyop.endpoints.pushed_authorization` -- RFC 9126.
"""
