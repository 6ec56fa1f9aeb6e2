"""Transport security of every meshscope server and channel: TLS from PEM files, and a mesh token.

Read once at start, from the environment (docs/configuration.md, "Transport security";
docs/operations.md says how to run it):

  MESHSCOPE_TLS_CERT_FILE, MESHSCOPE_TLS_KEY_FILE   a server's certificate (chain) and private key:
                                  set, the server serves TLS only
  MESHSCOPE_TLS_CA_FILE           the CA bundle peers are verified against: channels verify the
                                  servers they call, servers verify client certificates; set, every
                                  channel uses TLS
  MESHSCOPE_TLS_CLIENT_AUTH       `require` (servers refuse a peer without a certificate the CA
                                  signed: mutual TLS) or `none` (the default)
  MESHSCOPE_TLS_CLIENT_CERT_FILE, MESHSCOPE_TLS_CLIENT_KEY_FILE   the certificate and key channels
                                  present to servers that require one
  MESHSCOPE_TLS_SERVER_NAME       the name channels expect in servers' certificates, instead of the
                                  host they dial (for certificates that name a service, not an address)
  MESHSCOPE_MESH_TOKEN            a shared secret (16-4096 visible ASCII characters): every channel sends
                                  `authorization: Bearer <token>`, every server refuses a call without
                                  it (UNAUTHENTICATED), except health checks

All of it is off by default (plaintext, no token): right on loopback, where only this machine can
call. A half-configured setting (a certificate without its key, a file that cannot be read or
holds no PEM, a key that is not the certificate's, a CA on a server without a certificate...)
raises `ConfigError` with one line naming the variable; the processes exit 2 with it. Files are
read once, at start: replacing a certificate takes a restart.

Importing this module loads the standard library only (the CLI's start-up budget); the gRPC
credentials are built by `server_credentials` and `channel_credentials`, which import grpc.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshscope.config import Config, ConfigError

if TYPE_CHECKING:
    import grpc

__all__ = ["CLIENT_AUTH_CHOICES", "MAX_TOKEN_LENGTH", "MIN_TOKEN_LENGTH", "Pem", "Security", "Tls"]

CLIENT_AUTH_CHOICES = ("none", "require")
MIN_TOKEN_LENGTH = 16
"""A shorter token is too easy to guess to keep a mesh closed."""
MAX_TOKEN_LENGTH = 4096
"""It travels in call metadata, which gRPC bounds (8 KiB by default for all of it)."""

_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_PRIVATE_KEY = b"PRIVATE KEY-----"


@dataclass(frozen=True)
class Pem:
    """One PEM file, read at start: where it came from (for messages) and its bytes."""

    variable: str
    path: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Tls:
    """What TLS this process uses: its server key pair, the CA, its client key pair.

    `certificate`/`key` (both or neither) make servers serve TLS; `ca` makes channels use TLS
    and verify servers against it (and, with `require_client_auth`, servers verify clients);
    `client_certificate`/`client_key` (both or neither, only with `ca`) are what channels
    present. Build it with `Security.from_config`, which checks all of this.
    """

    certificate: Pem | None = None
    key: Pem | None = None
    ca: Pem | None = None
    require_client_auth: bool = False
    client_certificate: Pem | None = None
    client_key: Pem | None = None
    server_name: str | None = None


@dataclass(frozen=True)
class Security:
    """TLS and the mesh token of one process; the default is neither (plaintext, open)."""

    tls: Tls = field(default_factory=Tls)
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, config: Config, *, serving: bool) -> Security:
        """Read and check every MESHSCOPE_TLS_* variable and MESHSCOPE_MESH_TOKEN.

        `serving`: whether this process serves (a server needs a certificate for a CA or for
        client authentication to mean anything); a client-only process (the CLI) may give a
        CA alone. Raises ConfigError, one line naming the variable at fault.
        """
        tls = _read_tls(config, serving=serving)
        return cls(tls=tls, token=_read_token(config))

    @property
    def serves_tls(self) -> bool:
        return self.tls.certificate is not None

    @property
    def dials_tls(self) -> bool:
        return self.tls.ca is not None

    @property
    def open(self) -> bool:
        """Neither TLS nor a token on the server side: anyone who reaches the port may call."""
        return not self.serves_tls and self.token is None

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """TLS credentials for a server's port (None: plaintext)."""
        tls = self.tls
        if tls.certificate is None or tls.key is None:
            return None
        import grpc

        return grpc.ssl_server_credentials(
            [(tls.key.data, tls.certificate.data)],
            root_certificates=tls.ca.data if tls.ca is not None else None,
            require_client_auth=tls.require_client_auth,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials for a channel (None: plaintext)."""
        tls = self.tls
        if tls.ca is None:
            return None
        import grpc

        return grpc.ssl_channel_credentials(
            root_certificates=tls.ca.data,
            private_key=tls.client_key.data if tls.client_key is not None else None,
            certificate_chain=tls.client_certificate.data if tls.client_certificate is not None else None,
        )

    def channel_options(self) -> list[tuple[str, Any]]:
        """Channel arguments security adds: the name expected in servers' certificates."""
        if self.tls.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.tls.server_name)]


def _read_pem(config: Config, variable: str, marker: bytes, what: str) -> Pem | None:
    path = config.optional(variable)
    if path is None:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{variable}={path!r}: cannot read it ({exc.strerror or exc})") from None
    if marker not in data:
        raise ConfigError(f"{variable}={path!r} holds no PEM {what}")
    if marker == _CERTIFICATE:
        _check_certificates(variable, path)
    return Pem(variable, path, data)


def _check_certificates(variable: str, path: str) -> None:
    """Every certificate in the file at `path` parses (checked by the ssl module)."""
    import ssl

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"{variable}={path!r} holds a certificate that does not parse ({_reason(exc)})"
        ) from None


def _reason(exc: Exception) -> str:
    """What the ssl module says went wrong, in a few words."""
    return str(getattr(exc, "reason", None) or exc)


def _pair(config: Config, cert_variable: str, key_variable: str) -> tuple[Pem | None, Pem | None]:
    """A certificate and its key: both or neither, readable, PEM, and matching each other."""
    if config.optional(cert_variable) is not None and config.optional(key_variable) is None:
        raise ConfigError(f"{key_variable} is not set: {cert_variable} needs its private key")
    if config.optional(key_variable) is not None and config.optional(cert_variable) is None:
        raise ConfigError(f"{cert_variable} is not set: {key_variable} needs its certificate")
    certificate = _read_pem(config, cert_variable, _CERTIFICATE, "certificate")
    key = _read_pem(config, key_variable, _PRIVATE_KEY, "private key")
    if certificate is not None and key is not None:
        _check_match(certificate, key)
    return certificate, key


def _check_match(certificate: Pem, key: Pem) -> None:
    """`key` is the unencrypted private key of `certificate` (checked by the ssl module, once)."""
    import ssl

    def no_password() -> bytes:
        return b""  # an encrypted key fails to load, rather than prompting on a terminal

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(certificate.path, key.path, no_password)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"{key.variable}={key.path!r} is not the unencrypted private key of "
            f"{certificate.variable}={certificate.path!r} ({_reason(exc)})"
        ) from None


def _read_tls(config: Config, *, serving: bool) -> Tls:
    certificate, key = _pair(config, "MESHSCOPE_TLS_CERT_FILE", "MESHSCOPE_TLS_KEY_FILE")
    ca = _read_pem(config, "MESHSCOPE_TLS_CA_FILE", _CERTIFICATE, "certificate")
    client_auth = config.choice("MESHSCOPE_TLS_CLIENT_AUTH", "none", CLIENT_AUTH_CHOICES)
    client_certificate, client_key = _pair(
        config, "MESHSCOPE_TLS_CLIENT_CERT_FILE", "MESHSCOPE_TLS_CLIENT_KEY_FILE"
    )
    server_name = config.optional("MESHSCOPE_TLS_SERVER_NAME")
    if client_auth == "require" and ca is None:
        raise ConfigError(
            "MESHSCOPE_TLS_CA_FILE is not set: MESHSCOPE_TLS_CLIENT_AUTH=require needs the CA that "
            "signs client certificates"
        )
    if serving and certificate is None:
        if client_auth == "require":
            raise ConfigError(
                "MESHSCOPE_TLS_CERT_FILE is not set: MESHSCOPE_TLS_CLIENT_AUTH=require needs a server "
                "certificate (client authentication is part of TLS)"
            )
        if ca is not None:
            raise ConfigError(
                "MESHSCOPE_TLS_CERT_FILE is not set: with MESHSCOPE_TLS_CA_FILE this process's channels "
                "use TLS, and its server needs a certificate and key to serve TLS too"
            )
    if ca is None:
        for variable, given in (
            ("MESHSCOPE_TLS_CLIENT_CERT_FILE", client_certificate),
            ("MESHSCOPE_TLS_SERVER_NAME", server_name),
        ):
            if given is not None:
                raise ConfigError(
                    f"MESHSCOPE_TLS_CA_FILE is not set: {variable} is for TLS channels, which need the "
                    "CA that verifies servers"
                )
    return Tls(
        certificate=certificate,
        key=key,
        ca=ca,
        require_client_auth=client_auth == "require",
        client_certificate=client_certificate,
        client_key=client_key,
        server_name=server_name,
    )


def _read_token(config: Config) -> str | None:
    """MESHSCOPE_MESH_TOKEN, checked without ever quoting it (it is a secret)."""
    token = config.optional("MESHSCOPE_MESH_TOKEN")
    if token is None:
        return None
    if not MIN_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH:
        raise ConfigError(
            f"MESHSCOPE_MESH_TOKEN is not valid: expected {MIN_TOKEN_LENGTH}-{MAX_TOKEN_LENGTH} "
            f"characters, got {len(token)}"
        )
    if not all("!" <= c <= "~" for c in token):
        raise ConfigError(
            "MESHSCOPE_MESH_TOKEN is not valid: expected visible ASCII characters only (no spaces), "
            "as call metadata carries it"
        )
    return token
