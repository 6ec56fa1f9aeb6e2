"""Transport-security settings: what is accepted, and every half-configuration refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshscope.channels import ChannelSettings, channel_arguments
from meshscope.config import Config, ConfigError
from meshscope.security import Security
from meshscope.testing import KeyPair, TestCA

TOKEN = "mesh-token-for-tests-0123456789"


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "pki")


@pytest.fixture
def pair(ca: TestCA) -> KeyPair:
    return ca.issue("agent", client=True)


def read(env: dict[str, str], *, serving: bool = True) -> Security:
    return Security.from_config(Config(env), serving=serving)


def refused(env: dict[str, str], *, serving: bool = True) -> str:
    with pytest.raises(ConfigError) as error:
        read(env, serving=serving)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_nothing_set_is_plaintext_and_open() -> None:
    security = read({})
    assert security.open and not security.serves_tls and not security.dials_tls
    assert security.server_credentials() is None and security.channel_credentials() is None


def test_a_complete_mutual_tls_setting_is_read(ca: TestCA, pair: KeyPair) -> None:
    security = read(
        {
            **ca.server_env(pair, require_client_auth=True),
            **ca.client_env(pair),
            "MESHSCOPE_MESH_TOKEN": TOKEN,
        }
    )
    assert security.serves_tls and security.dials_tls and security.tls.require_client_auth
    assert security.token == TOKEN and not security.open
    assert security.server_credentials() is not None and security.channel_credentials() is not None
    shown = repr(security)
    assert TOKEN not in shown and "PRIVATE KEY" not in shown  # secrets never reach a log line


def test_a_client_may_give_the_ca_alone_a_server_may_not(ca: TestCA) -> None:
    assert read(ca.client_env(), serving=False).dials_tls
    assert refused(ca.client_env()).startswith(
        "MESHSCOPE_TLS_CERT_FILE is not set: with MESHSCOPE_TLS_CA_FILE this process's channels use TLS"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MESHSCOPE_TLS_CERT_FILE": "/nowhere/agent.pem"},
            "MESHSCOPE_TLS_KEY_FILE is not set: MESHSCOPE_TLS_CERT_FILE needs its private key",
        ),
        (
            {"MESHSCOPE_TLS_KEY_FILE": "/nowhere/agent-key.pem"},
            "MESHSCOPE_TLS_CERT_FILE is not set: MESHSCOPE_TLS_KEY_FILE needs its certificate",
        ),
        (
            {"MESHSCOPE_TLS_CLIENT_CERT_FILE": "/nowhere/c.pem"},
            "MESHSCOPE_TLS_CLIENT_KEY_FILE is not set: MESHSCOPE_TLS_CLIENT_CERT_FILE needs its private key",
        ),
        (
            {"MESHSCOPE_TLS_CLIENT_AUTH": "require"},
            "MESHSCOPE_TLS_CA_FILE is not set: MESHSCOPE_TLS_CLIENT_AUTH=require needs the CA",
        ),
        (
            {"MESHSCOPE_TLS_CLIENT_AUTH": "maybe"},
            "MESHSCOPE_TLS_CLIENT_AUTH='maybe' is not valid: expected none or require",
        ),
        (
            {"MESHSCOPE_TLS_SERVER_NAME": "agents.mesh"},
            "MESHSCOPE_TLS_CA_FILE is not set: MESHSCOPE_TLS_SERVER_NAME is for TLS channels",
        ),
        (
            {"MESHSCOPE_MESH_TOKEN": "short"},
            "MESHSCOPE_MESH_TOKEN is not valid: expected 16-4096 characters, got 5",
        ),
        (
            {"MESHSCOPE_MESH_TOKEN": "a token with spaces in it"},
            "MESHSCOPE_MESH_TOKEN is not valid: expected visible ASCII characters only",
        ),
    ],
)
def test_a_half_configuration_is_one_line_naming_the_variable(env: dict[str, str], message: str) -> None:
    assert refused(env).startswith(message)


def test_files_that_are_missing_unreadable_or_not_pem_are_named(
    ca: TestCA, pair: KeyPair, tmp_path: Path
) -> None:
    server = ca.server_env(pair)
    missing = str(tmp_path / "missing-key.pem")
    assert refused({**server, "MESHSCOPE_TLS_KEY_FILE": missing}) == (
        f"MESHSCOPE_TLS_KEY_FILE={missing!r}: cannot read it (No such file or directory)"
    )
    assert refused({**server, "MESHSCOPE_TLS_CA_FILE": str(tmp_path)}) == (
        f"MESHSCOPE_TLS_CA_FILE={str(tmp_path)!r}: cannot read it (Is a directory)"
    )
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    assert refused({**server, "MESHSCOPE_TLS_CERT_FILE": str(garbage)}) == (
        f"MESHSCOPE_TLS_CERT_FILE={str(garbage)!r} holds no PEM certificate"
    )
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert refused({**server, "MESHSCOPE_TLS_CA_FILE": str(broken)}).startswith(
        f"MESHSCOPE_TLS_CA_FILE={str(broken)!r} holds a certificate that does not parse"
    )
    # A certificate's file given as the key: no private key in it.
    assert refused({**server, "MESHSCOPE_TLS_KEY_FILE": str(pair.cert_file)}) == (
        f"MESHSCOPE_TLS_KEY_FILE={str(pair.cert_file)!r} holds no PEM private key"
    )


def test_a_key_that_is_not_the_certificates_is_refused(ca: TestCA, pair: KeyPair) -> None:
    other = ca.issue("other")
    message = refused({**ca.server_env(pair), "MESHSCOPE_TLS_KEY_FILE": str(other.key_file)})
    assert message.startswith(
        f"MESHSCOPE_TLS_KEY_FILE={str(other.key_file)!r} is not the unencrypted private key of "
        f"MESHSCOPE_TLS_CERT_FILE={str(pair.cert_file)!r}"
    )


def test_a_refused_token_is_never_quoted() -> None:
    secret = "tiny-secret"
    assert secret not in refused({"MESHSCOPE_MESH_TOKEN": secret})


def test_channel_settings_from_the_environment_carry_security(ca: TestCA, pair: KeyPair) -> None:
    settings = ChannelSettings.from_env(
        {
            **ca.client_env(pair),
            "MESHSCOPE_TLS_SERVER_NAME": "agents.mesh",
            "MESHSCOPE_GRPC_KEEPALIVE_TIME_S": "5",
        }
    )
    assert settings.security.dials_tls and settings.keepalive_time_s == 5
    assert ("grpc.ssl_target_name_override", "agents.mesh") in settings.security.channel_options()


def test_options_given_to_the_factory_win_over_the_settings() -> None:
    """One value per argument reaches gRPC: the caller's, not both."""
    settings = ChannelSettings(max_message_bytes=1024)
    assert dict(channel_arguments(settings))["grpc.max_receive_message_length"] == 1024
    arguments = channel_arguments(settings, [("grpc.max_receive_message_length", 2048)])
    assert [value for name, value in arguments if name == "grpc.max_receive_message_length"] == [2048]
