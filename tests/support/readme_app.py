"""The original README's code (contract/original-README.txt), verbatim, as one host app.

Every README snippet below is copied exactly, with its indentation restored.
The few lines that are *not* from the README are marked ``# host glue``:
the pseudo framework (``app``, ``HTTPResponse``, ``session``, see
``support/__init__.py``), the README's free variables (``db_uri``,
``sub_hash_salt``, ``user_id``), the page shown where the README says
``// TODO initiate end-user authentication``, the route running the README's
"authentication completed" snippet, the JWKS route for the derived
``jwks_uri``, and two functions wrapping the README's ``...validators.append(...)``
lines so tests choose when to install them.

Loaded afresh per test by ``support.readme_app_context`` (the current directory
holds ``signing_key.pem``; MongoDB is mongomock).
"""
# The README's code is kept verbatim: its imports sit where the README puts
# them (one twice), some lines are long, it uses str.format and its logout
# route names an unused `e`.
# ruff: noqa: E402, E501, F811, F841, I001, UP032

import json  # host glue
from urllib.parse import parse_qs  # host glue

from support import DB_URI, HTTPResponse, ReadmeApp, session  # host glue

app = ReadmeApp()  # host glue
db_uri = DB_URI  # host glue
sub_hash_salt = 'a secret salt for the README app'  # host glue

# -- README: provider configuration ----------------------------------------------------------
from jwkest.jwk import rsa_load, RSAKey
from pyop.authz_state import AuthorizationState
from pyop.provider import Provider
from pyop.storage import MongoWrapper
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

signing_key = RSAKey(key=rsa_load('signing_key.pem'), use='sig', alg='RS256')
configuration_information = {
    'issuer': 'https://example.com',
    'authorization_endpoint': 'https://example.com/authorization',
    'token_endpoint': 'https://example.com/token',
    'userinfo_endpoint': 'https://example.com/userinfo',
    'registration_endpoint': 'https://example.com/registration',
    'response_types_supported': ['code', 'id_token token'],
    'id_token_signing_alg_values_supported': [signing_key.alg],
    'response_modes_supported': ['fragment', 'query'],
    'subject_types_supported': ['public', 'pairwise'],
    'grant_types_supported': ['authorization_code', 'implicit'],
    'claim_types_supported': ['normal'],
    'claims_parameter_supported': True,
    'claims_supported': ['sub', 'name', 'given_name', 'family_name'],
    'request_parameter_supported': False,
    'request_uri_parameter_supported': False,
    'scopes_supported': ['openid', 'profile']
}

subject_id_factory = HashBasedSubjectIdentifierFactory(sub_hash_salt)
authz_state = AuthorizationState(subject_id_factory,
                                 MongoWrapper(db_uri, 'provider', 'authz_codes'),
                                 MongoWrapper(db_uri, 'provider', 'access_tokens'),
                                 MongoWrapper(db_uri, 'provider', 'refresh_tokens'),
                                 MongoWrapper(db_uri, 'provider', 'subject_identifiers'))
client_db = MongoWrapper(db_uri, 'provider', 'clients')
user_db = MongoWrapper(db_uri, 'provider', 'users')
provider = Provider(signing_key, configuration_information, authz_state, client_db, Userinfo(user_db))


# -- README: provider configuration endpoint -------------------------------------------------
@app.route('/.well-known/openid-configuration')
def provider_config():
    return HTTPResponse(provider.provider_configuration.to_json(), content_type="application/json")


# -- host glue: publish the JWK Set at the derived jwks_uri (<issuer>/jwks) -------------------
@app.route('/jwks')
def jwks():
    return HTTPResponse(json.dumps(provider.jwks), content_type='application/json')


# -- README: authentication request ----------------------------------------------------------
from pyop.exceptions import InvalidAuthenticationRequest

@app.route('/authorization')
def authorization_endpoints(request):
    try:
        authn_req = provider.parse_authentication_request(request)
    except InvalidAuthenticationRequest as e:
        error_url = e.to_error_url()

        if error_url:
            return HTTPResponse(error_url, status=303)
        else:
            return HTTPResponse("Something went wrong: {}".format(str(e)), status=400)

    session['authn_req'] = authn_req.to_dict()
    # TODO initiate end-user authentication
    return HTTPResponse('Please log in', status=200)  # host glue: the login page


# -- README: authentication completed --------------------------------------------------------
from pyop.message import AuthorizationRequest
from pyop.util import should_fragment_encode

@app.route('/authentication-done', methods=['POST'])  # host glue: the login form posts here
def authentication_done(request):  # host glue
    user_id = parse_qs(request)['user_id'][0]  # host glue: the authenticated local user
    authn_req = session['authn_req']
    authn_response = provider.authorize(AuthorizationRequest().from_dict(authn_req), user_id)
    return_url = authn_response.request(authn_req['redirect_uri'], should_fragment_encode(authn_req))

    return HTTPResponse(return_url, status=303)


# -- README: custom authentication request validation ----------------------------------------
from pyop.exceptions import InvalidAuthenticationRequest

def request_contains_nonce(authentication_request):
    if 'nonce' not in authentication_request:
        raise InvalidAuthenticationRequest('The request does not contain a nonce', authentication_request,
                                           oauth_error='invalid_request')


def enable_nonce_validator():  # host glue: tests decide when to install it
    provider.authentication_request_validators.append(request_contains_nonce)


# -- README: token endpoint ------------------------------------------------------------------
from oic.oic.message import TokenErrorResponse
from pyop.exceptions import InvalidClientAuthentication
from pyop.exceptions import OAuthError

@app.route('/token', methods=['POST', 'GET'])
def token_endpoint(request):
    try:
        token_response = provider.handle_token_request(request.get_data().decode('utf-8'),
                                                       request.headers)
        return HTTPResponse(token_response.to_json(), content_type='application/json')
    except InvalidClientAuthentication as e:
        error_resp = TokenErrorResponse(error='invalid_client', error_description=str(e))
        http_response = HTTPResponse(error_resp.to_json(), status=401, content_type='application/json')
        http_response.headers['WWW-Authenticate'] = 'Basic'
        return http_response
    except OAuthError as e:
        error_resp = TokenErrorResponse(error=e.oauth_error, error_description=str(e))
        return HTTPResponse(error_resp.to_json(), status=400, content_type='application/json')


# -- README: userinfo endpoint ---------------------------------------------------------------
from oic.oic.message import UserInfoErrorResponse
from pyop.access_token import AccessToken
from pyop.exceptions import BearerTokenError
from pyop.exceptions import InvalidAccessToken

@app.route('/userinfo', methods=['GET', 'POST'])
def userinfo_endpoint(request):
    try:
        response = provider.handle_userinfo_request(request.get_data().decode('utf-8'),
                                                    request.headers)
        return HTTPResponse(response.to_json(), content_type='application/json')
    except (BearerTokenError, InvalidAccessToken) as e:
        error_resp = UserInfoErrorResponse(error='invalid_token', error_description=str(e))
        http_response = HTTPResponse(error_resp.to_json(), status=401, content_type='application/json')
        http_response.headers['WWW-Authenticate'] = AccessToken.BEARER_TOKEN_TYPE
        return http_response


# -- README: client registration endpoint ----------------------------------------------------
from pyop.exceptions import InvalidClientRegistrationRequest

@app.route('/registration', methods=['POST'])
def registration_endpoint(request):
    try:
        response = provider.handle_client_registration_request(request.get_data().decode('utf-8'))
        return HTTPResponse(response.to_json(), status=201, content_type='application/json')
    except InvalidClientRegistrationRequest as e:
        return HTTPResponse(e.to_json(), status=400, content_type='application/json')


# -- README: custom registration request validation ------------------------------------------
def request_contains_software_statement(registration_request):
    if 'software_statement' not in registration_request:
        raise InvalidClientRegistrationRequest('The request does not contain a software_statement', registration_request,
                                               oauth_error='invalid_request')


def enable_software_statement_validator():  # host glue: tests decide when to install it
    provider.registration_request_validators.append(request_contains_software_statement)


# -- README: RP-initiated logout -------------------------------------------------------------
from oic.oic.message import EndSessionRequest
from pyop.exceptions import InvalidSubjectIdentifier

@app.route('/logout')
def end_session_endpoint(request):
    end_session_request = EndSessionRequest().deserialize(request.get_data().decode('utf-8'))

    try:
        provider.logout_user(session.get('sub'), end_session_request)
    except InvalidSubjectIdentifier as e:
        return HTTPResponse('Logout unsuccessful!', content_type='text/html', status=400)

    # TODO automagic logout, should ask user first!
    redirect_url = provider.do_post_logout_redirect(end_session_request)
    if redirect_url:
        return HTTPResponse(redirect_url, status=303)

    return HTTPResponse('Logout successful!', content_type='text/html')
