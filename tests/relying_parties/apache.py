"""Apache httpd with mod_auth_openidc, started from a generated configuration.

:class:`ApacheRP` writes a complete ``httpd.conf`` (its own ServerRoot, PidFile,
ErrorLog, modules loaded from Debian's ``/usr/lib/apache2/modules``) into a
temporary directory and runs ``apache2 -f <conf> -DFOREGROUND`` as a child
process, so that nothing of the system's Apache configuration is used or
changed. Each :class:`Site` is a virtual host on its own loopback port that
protects ``/protected/`` (a CGI page printing ``REMOTE_USER`` and every
``OIDC_CLAIM_*`` variable) with ``AuthType openid-connect``.

When run as root (CI) the worker processes switch to an unprivileged user
(``www-data``, else ``nobody``): the directory is made readable for it and the
``OIDCMetadataDir`` writable, since mod_auth_openidc writes the client it
registers there.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

__all__ = ["ApacheRP", "Site", "free_port", "metadata_file_stem", "missing_apache_parts",
           "APACHE_MODULES", "MODULES_DIR", "self_signed_certificate"]

MODULES_DIR = Path("/usr/lib/apache2/modules")
#: module name -> shared object, everything the generated configuration loads
APACHE_MODULES = {
    "mpm_event_module": "mod_mpm_event.so",
    "authz_core_module": "mod_authz_core.so",
    "authz_user_module": "mod_authz_user.so",
    "authn_core_module": "mod_authn_core.so",
    "mime_module": "mod_mime.so",
    "dir_module": "mod_dir.so",
    "env_module": "mod_env.so",
    "cgid_module": "mod_cgid.so",
    "socache_shmcb_module": "mod_socache_shmcb.so",
    "ssl_module": "mod_ssl.so",
    "auth_openidc_module": "mod_auth_openidc.so",
}

#: The protected page: REMOTE_USER and the claims mod_auth_openidc passes as
#: OIDC_CLAIM_* environment variables, HTML-escaped, one <li id="NAME"> each.
CGI_SCRIPT = r"""#!/bin/sh
escape() {
  printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'
}
printf 'Content-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n\r\n'
printf '<!doctype html><title>protected</title><h1>Protected page</h1><ul>\n'
printf '<li id="REMOTE_USER">%s</li>\n' "$(escape "$REMOTE_USER")"
for name in $(env | sed -n 's/^\(OIDC_CLAIM_[A-Za-z0-9_]*\)=.*/\1/p' | sort); do
  printf '<li id="%s">%s</li>\n' "$name" "$(escape "$(printenv "$name")")"
done
printf '</ul>\n'
printf '<a id="logout" href="%s?logout=%s">Log out</a>\n' "$OIDC_REDIRECT_PATH" "$LOGGED_OUT_URL"
"""

LOGGED_OUT_PAGE = "<!doctype html><title>logged out</title><p id=\"logged-out\">logged out</p>\n"


def metadata_file_stem(issuer: str) -> str:
    """The name mod_auth_openidc gives an issuer's files in OIDCMetadataDir.

    The issuer without its scheme and trailing slash, URL-encoded:
    ``http://127.0.0.1:5000`` is ``127.0.0.1%3A5000`` (``.provider``, ``.client``,
    ``.conf``).
    """
    for scheme in ("https://", "http://"):
        if issuer.startswith(scheme):
            issuer = issuer[len(scheme):]
            break
    return quote(issuer.rstrip("/"), safe="")


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def find_apache() -> Optional[str]:
    """``apache2`` on the PATH or in /usr/sbin."""
    return shutil.which("apache2") or (
        "/usr/sbin/apache2" if os.access("/usr/sbin/apache2", os.X_OK) else None)


def missing_apache_parts() -> Optional[str]:
    """Why Apache with mod_auth_openidc cannot run here, or None when it can."""
    if find_apache() is None:
        return "apache2 is not installed (apt-get install apache2)"
    missing = [so for so in APACHE_MODULES.values() if not (MODULES_DIR / so).is_file()]
    if "mod_auth_openidc.so" in missing:
        return ("mod_auth_openidc is not installed "
                "(apt-get install libapache2-mod-auth-openidc)")
    if missing:
        return f"Apache modules missing in {MODULES_DIR}: {', '.join(missing)}"
    return None


def self_signed_certificate(hostnames: list[str], directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate for host names and IP addresses (the browser is told to
    accept it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    alt_names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "rp.crt", directory / "rp.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Site:
    """A virtual host protecting ``/protected/`` with mod_auth_openidc.

    :param name: a label (also the name of its document root).
    :param host: the host name in its URLs (``127.0.0.1``, or a name the browser
        maps to 127.0.0.1).
    :param https: serve it with TLS (a self-signed certificate).
    :param oidc: the mod_auth_openidc directives of the virtual host;
        ``{url}`` is replaced by the site's base URL and ``{metadata_dir}`` by its
        OIDCMetadataDir.
    """

    name: str
    host: str
    https: bool
    oidc: str
    #: per-provider configuration for OIDCMetadataDir: issuer -> the JSON of its ``.conf``
    provider_conf: dict[str, dict[str, Any]] = field(default_factory=dict)
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"{'https' if self.https else 'http'}://{self.host}:{self.port}"

    @property
    def protected_url(self) -> str:
        return self.url + "/protected/"

    @property
    def redirect_uri(self) -> str:
        return self.url + "/protected/redirect_uri"

    @property
    def logged_out_url(self) -> str:
        return self.url + "/logged-out.html"


class ApacheRP:
    """``apache2 -DFOREGROUND`` serving the given sites from a temporary ServerRoot."""

    def __init__(self, sites: list[Site]) -> None:
        self.sites = {site.name: site for site in sites}
        # not under pytest's tmp_path: it is mode 0700, and the workers may run as www-data
        self.root = Path(tempfile.mkdtemp(prefix="pyop-apache-"))
        self.root.chmod(0o755)
        self.user = self._worker_user()
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.error_log = self.root / "error.log"
        self.config = self.root / "httpd.conf"

    @staticmethod
    def _worker_user() -> Optional[pwd.struct_passwd]:
        if os.geteuid() != 0:
            return None  # Apache runs as the current user and does not switch
        for name in ("www-data", "nobody"):
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
        raise RuntimeError("running as root but there is no www-data or nobody user")

    def metadata_dir(self, site: Site) -> Path:
        return self.root / "metadata" / site.name

    def _write_files(self) -> str:
        cert = key = None
        if any(site.https for site in self.sites.values()):
            names = sorted({site.host for site in self.sites.values() if site.https})
            cert, key = self_signed_certificate(names, self.root)
            key.chmod(0o600)  # read by the parent process before it switches user
        (self.root / "logs").mkdir()
        vhosts = []
        for site in self.sites.values():
            docroot = self.root / "htdocs" / site.name
            (docroot / "protected").mkdir(parents=True)
            script = docroot / "protected" / "index.cgi"
            script.write_text(CGI_SCRIPT, encoding="utf-8")
            script.chmod(0o755)
            (docroot / "logged-out.html").write_text(LOGGED_OUT_PAGE, encoding="utf-8")
            metadata = self.metadata_dir(site)
            metadata.mkdir(parents=True)
            for issuer, conf in site.provider_conf.items():
                (metadata / (metadata_file_stem(issuer) + ".conf")).write_text(
                    json.dumps(conf), encoding="utf-8")
            if self.user is not None:
                os.chown(metadata, self.user.pw_uid, self.user.pw_gid)
            oidc = site.oidc.format(url=site.url, metadata_dir=metadata)
            tls = f"""
    SSLEngine on
    SSLCertificateFile {cert}
    SSLCertificateKeyFile {key}""" if site.https else ""
            vhosts.append(f"""
Listen 127.0.0.1:{site.port}
<VirtualHost 127.0.0.1:{site.port}>
    ServerName {site.host}:{site.port}
    DocumentRoot {docroot}{tls}
{oidc}
    <Directory {docroot}>
        Require all granted
    </Directory>
    <Directory {docroot}/protected>
        Options +ExecCGI
        AddHandler cgi-script .cgi
        DirectoryIndex index.cgi
        SetEnv OIDC_REDIRECT_PATH /protected/redirect_uri
        SetEnv LOGGED_OUT_URL {quote(site.logged_out_url, safe="")}
        AuthType openid-connect
        Require valid-user
    </Directory>
</VirtualHost>
""")
        modules = "\n".join(f"LoadModule {name} {MODULES_DIR / so}"
                            for name, so in APACHE_MODULES.items())
        user = f"User {self.user.pw_name}\nGroup #{self.user.pw_gid}\n" if self.user else ""
        return f"""# generated for the relying party tests
ServerRoot {self.root}
ServerName 127.0.0.1
PidFile {self.root}/logs/httpd.pid
ErrorLog {self.error_log}
LogLevel warn auth_openidc:info
{modules}
{user}TypesConfig /dev/null
ScriptSock {self.root}/logs/cgid.sock
SSLSessionCache shmcb:{self.root}/logs/ssl_scache(512000)
StartServers 1
ServerLimit 2
ThreadsPerChild 25
MaxRequestWorkers 50
MinSpareThreads 5
MaxSpareThreads 50
Timeout 30
{"".join(vhosts)}"""

    def start(self, timeout: float = 20.0) -> None:
        self.config.write_text(self._write_files(), encoding="utf-8")
        apache = find_apache()
        assert apache is not None
        self.process = subprocess.Popen([apache, "-f", str(self.config), "-DFOREGROUND"],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        pending = {site.port for site in self.sites.values()}
        while pending:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                raise RuntimeError(f"apache2 exited with {self.process.returncode}: "
                                   f"{output}{self.log_tail()}")
            for port in list(pending):
                with socket.socket() as s:
                    s.settimeout(0.5)
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        pending.discard(port)
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"apache2 did not listen within {timeout} s{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.error_log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\nerror.log:\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # graceful stop of the parent and workers
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process is not None and self.process.stdout:
            self.process.stdout.close()
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
