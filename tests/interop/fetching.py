"""Launchers for servers that fetch their staples from an OCSP responder.

nginx (``ssl_stapling_responder``), Apache httpd mod_ssl (``SSLStaplingForceURL``) and
Caddy (the certificate's Authority Information Access URL), each on 127.0.0.1 and an
ephemeral port, with every file it writes in its own temporary directory, and always
stopped by whoever started it (they are :class:`tests.realservers.RealServer` s).
The behaviour they show is described and pinned in ``test_fetching_servers.py``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from staplecheck.testing._process import read_log
from tests.realservers import HOST, Nginx, RealServer, TLSVersion

__all__ = ["APACHE_MODULES", "Apache", "Caddy", "FetchingNginx"]

APACHE_MODULES = Path("/usr/lib/apache2/modules")


class FetchingNginx(Nginx):
    """nginx stapling what it fetches from ``responder_url`` (``None``: stapling off).

    ``ssl_stapling_verify on`` (unless ``verify=False``) checks fetched responses
    against ``trusted_certificate`` (the root, PEM), which is also
    ``ssl_trusted_certificate``. An IP address in the URL needs no ``resolver``.
    """

    def __init__(
        self,
        cert_chain_path: str | os.PathLike[str],
        key_path: str | os.PathLike[str],
        *,
        trusted_certificate: str | os.PathLike[str],
        responder_url: str | None,
        tls_version: TLSVersion = "1.3",
        verify: bool = True,
    ) -> None:
        super().__init__(cert_chain_path, key_path, None, (f"TLSv{tls_version}",))
        self.trusted_certificate = Path(trusted_certificate)
        self.responder_url = responder_url
        self.verify = verify

    def _stapling_directives(self) -> str:
        if self.responder_url is None:
            return "ssl_stapling off;"
        return "\n        ".join(
            [
                "ssl_stapling on;",
                f"ssl_stapling_verify {'on' if self.verify else 'off'};",
                f"ssl_trusted_certificate {self.trusted_certificate};",
                f"ssl_stapling_responder {self.responder_url};",
            ]
        )

    def error_log(self) -> str:
        """nginx's error log so far (the fetches and their failures are logged there)."""
        return read_log(self.directory / "error.log")


class Apache(RealServer):
    """Apache httpd with mod_ssl, stapling what it fetches from ``responder_url``.

    ``apache2 -X`` (one process, foreground) with a minimal configuration of its own:
    the prefork MPM, authz_core, dir, socache_shmcb and ssl modules from
    :data:`APACHE_MODULES`, ``Listen 127.0.0.1:PORT``, ``ServerRoot`` and every
    runtime file in the temporary directory. ``responder_url`` is
    ``SSLStaplingForceURL`` (``None``: ``SSLUseStapling off``). ``return_errors`` and
    ``fake_try_later`` are ``SSLStaplingReturnResponderErrors`` and
    ``SSLStaplingFakeTryLater`` (both on by default, as in Apache).
    ``cache_timeout`` and ``error_cache_timeout`` are ``SSLStaplingStandardCacheTimeout``
    and ``SSLStaplingErrorCacheTimeout`` (seconds; ``None`` keeps Apache's 3600 and
    600), ``responder_timeout`` is ``SSLStaplingResponderTimeout`` (seconds).
    The worker runs as ``www-data`` when started by root (Apache refuses to serve as
    root). ``GET /`` answers 200 ``ok``.
    """

    program = "apache2"

    def __init__(
        self,
        cert_chain_path: str | os.PathLike[str],
        key_path: str | os.PathLike[str],
        *,
        responder_url: str | None,
        tls_version: TLSVersion = "1.3",
        return_errors: bool = True,
        fake_try_later: bool = True,
        cache_timeout: int | None = None,
        error_cache_timeout: int | None = None,
        responder_timeout: int = 2,
    ) -> None:
        super().__init__()
        self.cert_chain_path = Path(cert_chain_path)
        self.key_path = Path(key_path)
        self.responder_url = responder_url
        self.tls_version = tls_version
        self.return_errors = return_errors
        self.fake_try_later = fake_try_later
        self.cache_timeout = cache_timeout
        self.error_cache_timeout = error_cache_timeout
        self.responder_timeout = responder_timeout

    def config(self, port: int) -> str:
        tmp = self.directory
        modules = "\n".join(
            f"LoadModule {name}_module {APACHE_MODULES / f'mod_{name}.so'}"
            for name in ("mpm_prefork", "authz_core", "dir", "socache_shmcb", "ssl")
        )
        user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
        on = {True: "on", False: "off"}
        if self.responder_url is None:
            stapling = "SSLUseStapling off"
        else:
            lines = [
                "SSLUseStapling on",
                f"SSLStaplingForceURL {self.responder_url}",
                f"SSLStaplingResponderTimeout {self.responder_timeout}",
                f"SSLStaplingReturnResponderErrors {on[self.return_errors]}",
                f"SSLStaplingFakeTryLater {on[self.fake_try_later]}",
            ]
            if self.cache_timeout is not None:
                lines.append(f"SSLStaplingStandardCacheTimeout {self.cache_timeout}")
            if self.error_cache_timeout is not None:
                lines.append(f"SSLStaplingErrorCacheTimeout {self.error_cache_timeout}")
            stapling = "\n    ".join(lines)
        return f"""\
ServerRoot {tmp}
{modules}
{user}ServerName localhost
Listen {HOST}:{port}
PidFile {tmp / "httpd.pid"}
DefaultRuntimeDir {tmp}
ErrorLog {tmp / "error.log"}
LogLevel info ssl:debug
StartServers 1
MaxRequestWorkers 4
DocumentRoot {tmp / "htdocs"}
<Directory {tmp / "htdocs"}>
    Require all granted
</Directory>
DirectoryIndex index.html
SSLStaplingCache shmcb:{tmp / "stapling"}(128000)
SSLSessionCache none
<VirtualHost {HOST}:{port}>
    ServerName localhost
    SSLEngine on
    SSLCertificateFile {self.cert_chain_path}
    SSLCertificateKeyFile {self.key_path}
    SSLProtocol -all +TLSv{self.tls_version}
    SSLSessionTickets off
    {stapling}
</VirtualHost>
"""

    def _command(self, binary: str, port: int) -> list[str]:
        tmp = self.directory
        (tmp / "htdocs").mkdir(exist_ok=True)
        (tmp / "htdocs" / "index.html").write_text("ok\n")
        if os.geteuid() == 0:
            # The www-data worker must reach its document root and runtime files.
            shutil.chown(tmp, "root", "www-data")
            tmp.chmod(0o750)
        conf = tmp / "httpd.conf"
        conf.write_text(self.config(port))
        return [binary, "-X", "-f", str(conf), "-d", str(tmp)]

    def error_log(self) -> str:
        return read_log(self.directory / "error.log")

    def _logs(self) -> str:
        return super()._logs() + self.error_log()


class Caddy(RealServer):
    """Caddy serving ``tls CERT KEY`` on 127.0.0.1: it staples what it fetches from the
    OCSP URL in the certificate's Authority Information Access extension.

    ``admin off`` and ``auto_https off`` (no admin endpoint, no port-80 redirect, no
    ACME); HTTP/1.1 and HTTP/2 only (no HTTP/3 UDP listener). HOME, XDG_DATA_HOME and
    XDG_CONFIG_HOME point into the temporary directory, and so does Caddy's storage
    (where it keeps the OCSP responses it fetched) unless ``storage`` names a
    directory of the caller's, to outlive this process. ``stapling=False`` is the
    global ``ocsp_stapling off``; ``ocsp_interval`` the global option of that name
    (how often Caddy looks at its staples; its default is an hour).
    ``GET /`` answers 200 ``ok``.
    """

    program = "caddy"

    def __init__(
        self,
        cert_chain_path: str | os.PathLike[str],
        key_path: str | os.PathLike[str],
        *,
        tls_version: TLSVersion = "1.3",
        stapling: bool = True,
        ocsp_interval: str | None = None,
        storage: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        self.cert_chain_path = Path(cert_chain_path)
        self.key_path = Path(key_path)
        self.tls_version = tls_version
        self.stapling = stapling
        self.ocsp_interval = ocsp_interval
        self.storage = None if storage is None else Path(storage)

    def config(self, port: int) -> str:
        tmp = self.directory
        version = f"tls{self.tls_version}"
        options = []
        if not self.stapling:
            options.append("ocsp_stapling off")
        if self.ocsp_interval is not None:
            options.append(f"ocsp_interval {self.ocsp_interval}")
        extra = "\n    ".join(options)
        return f"""\
{{
    admin off
    auto_https off
    storage file_system {{
        root {self.storage or tmp / "storage"}
    }}
    servers {{
        protocols h1 h2
    }}
    log {{
        output file {tmp / "caddy.log"}
        level DEBUG
    }}
    {extra}
}}
https://localhost:{port} {{
    bind {HOST}
    tls {self.cert_chain_path} {self.key_path} {{
        protocols {version} {version}
    }}
    respond "ok
" 200
}}
"""

    def _environment(self) -> dict[str, str]:
        tmp = self.directory
        environment = dict(os.environ)
        environment.update(
            HOME=str(tmp),
            XDG_DATA_HOME=str(tmp / "data"),
            XDG_CONFIG_HOME=str(tmp / "config"),
        )
        return environment

    def _command(self, binary: str, port: int) -> list[str]:
        conf = self.directory / "Caddyfile"
        conf.write_text(self.config(port))
        return [binary, "run", "--config", str(conf), "--adapter", "caddyfile"]

    def log(self) -> str:
        return read_log(self.directory / "caddy.log")

    def _logs(self) -> str:
        return super()._logs() + self.log()
