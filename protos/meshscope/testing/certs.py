"""A throw-away certificate authority, for testing meshscope's transport security with real TLS.

    ca = TestCA(tmp_path)
    agent = ca.issue("agent")                    # a server certificate for 127.0.0.1, ::1, localhost
    caller = ca.issue("orchestrator", client=True)
    env = {**ca.server_env(agent, require_client_auth=True), **ca.client_env(caller)}

Certificates are ECDSA P-256, valid from an hour ago for a day, written as PEM files in
`folder`. `issue` makes a certificate usable both as a server's and (with `client=True`) as a
client's. Needs the `cryptography` package (meshscope's `dev` extra), imported only when a
`TestCA` is made, so importing `meshscope.testing` does not load it.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["KeyPair", "TestCA"]

DEFAULT_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM files."""

    cert_file: Path
    key_file: Path


class TestCA:
    """A CA whose certificate is `ca_file`, issuing key pairs into `folder` (see the module docstring)."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, folder: Path, name: str = "meshscope test CA") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
        usage = x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False,
        )  # fmt: skip
        self._certificate = (
            self._builder(self._name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = self._write("ca.pem", self._certificate)

    def _builder(self, subject: Any, public_key: Any) -> Any:
        from cryptography import x509

        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def _write(self, filename: str, item: Any) -> Path:
        from cryptography.hazmat.primitives import serialization

        path = self.folder / filename
        if hasattr(item, "private_bytes"):
            data = item.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        else:
            data = item.public_bytes(serialization.Encoding.PEM)
        path.write_bytes(data)
        return path

    def issue(self, name: str, *, hosts: Sequence[str] = DEFAULT_HOSTS, client: bool = False) -> KeyPair:
        """A key pair for `name` (files `<name>.pem`, `<name>-key.pem`), signed by this CA, valid
        for `hosts` (IP addresses and DNS names) as a server, and as a client too with `client`."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID

        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        usages = [ExtendedKeyUsageOID.SERVER_AUTH]
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
        certificate = (
            self._builder(subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return KeyPair(self._write(f"{name}.pem", certificate), self._write(f"{name}-key.pem", key))

    def server_env(self, pair: KeyPair, *, require_client_auth: bool = False) -> dict[str, str]:
        """The variables that make a meshscope server serve TLS with `pair` (and check client
        certificates against this CA with `require_client_auth`)."""
        return {
            "MESHSCOPE_TLS_CERT_FILE": str(pair.cert_file),
            "MESHSCOPE_TLS_KEY_FILE": str(pair.key_file),
            "MESHSCOPE_TLS_CA_FILE": str(self.ca_file),
            "MESHSCOPE_TLS_CLIENT_AUTH": "require" if require_client_auth else "none",
        }

    def client_env(self, pair: KeyPair | None = None) -> dict[str, str]:
        """The variables that make a meshscope process's channels use TLS, verifying servers
        against this CA, presenting `pair` when given (mutual TLS)."""
        env = {"MESHSCOPE_TLS_CA_FILE": str(self.ca_file)}
        if pair is not None:
            env["MESHSCOPE_TLS_CLIENT_CERT_FILE"] = str(pair.cert_file)
            env["MESHSCOPE_TLS_CLIENT_KEY_FILE"] = str(pair.key_file)
        return env
