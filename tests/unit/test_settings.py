"""Settings: defaults serve the embedded case; every bad value names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from addin_service.errors import ConfigError
from addin_service.settings import Settings

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "66666666-7777-8888-9999-000000000000"
BASE = {
    "ADDIN_EWS_URL": "https://mail.contoso.com/EWS/Exchange.asmx",
    "ADDIN_EWS_USERNAME": "svc-report",
    "ADDIN_EWS_PASSWORD": "s3cret",
    "ADDIN_TENANT_ID": TENANT,
    "ADDIN_CLIENT_ID": CLIENT,
}


def test_defaults_use_sqlite_and_a_local_evidence_folder(tmp_path: Path) -> None:
    settings = Settings.from_env(BASE, cwd=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path}/var/addin.db"
    assert settings.evidence_path == tmp_path / "var" / "evidence"
    assert settings.max_message_bytes == 100 * 1024 * 1024


def test_audience_defaults_to_the_client_id() -> None:
    assert Settings.from_env(BASE).audience[0] == CLIENT


def test_discovery_url_follows_authority_and_tenant() -> None:
    settings = Settings.from_env(BASE)
    assert settings.issuer_discovery_url == (
        f"https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration"
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ADDIN_EWS_URL", "http://mail.contoso.com/EWS/Exchange.asmx"),
        ("ADDIN_EWS_URL", "not a url"),
        ("ADDIN_EWS_AUTH", "kerberos"),
        ("ADDIN_EXCHANGE", "imap"),
        ("ADDIN_TENANT_ID", "common"),
        ("ADDIN_CLIENT_ID", "not-a-guid"),
        ("ADDIN_MAX_MESSAGE_BYTES", "-5"),
        ("ADDIN_MAX_MESSAGE_BYTES", "lots"),
        ("ADDIN_ESCALATE_AFTER", "soon"),
        ("ADDIN_SECURITY_MAILBOX", "security team"),
        ("ADDIN_SECURITY_TEAM", "analyst@contoso.com, the night shift"),
        ("ADDIN_DATABASE_URL", "mysql://db/x"),
        ("ADDIN_EVIDENCE_URL", "relative/path"),
        ("ADDIN_AUTHORITY", "http://login.example.com"),
        ("ADDIN_SIGNING_KEY", "/nonexistent/key.pem"),
        ("ADDIN_RATE_LIMIT", "fast"),
        ("ADDIN_METRICS_ALLOW", "prometheus.internal"),
        ("ADDIN_METRICS_ALLOW", "10.0.0.0/8,10.0.0.300"),
        ("ADDIN_METRICS_TOKEN", "short"),
        ("ADDIN_METRICS_TOKEN", "a token with spaces that is long enough"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, variable: value})
    assert str(err.value).startswith(f"{variable}: ")


@pytest.mark.parametrize("missing", ["ADDIN_EWS_URL", "ADDIN_EWS_USERNAME", "ADDIN_EWS_PASSWORD",
                                     "ADDIN_TENANT_ID", "ADDIN_CLIENT_ID"])
def test_a_missing_required_value_names_the_variable(missing: str) -> None:
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert str(err.value).startswith(f"{missing}: ")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("ADDIN_DATABASE_URL", "mysql://user:hunter2@db/x"), ("ADDIN_METRICS_TOKEN", "hunter2 hunter2 hunter2 hunter2")],
)
def test_secrets_are_never_echoed_in_errors(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, variable: value})
    assert "hunter2" not in str(err.value)


def test_metrics_are_for_loopback_alone_unless_configured() -> None:
    assert [str(n) for n in Settings.from_env(BASE).metrics_allow] == ["127.0.0.0/8", "::1/128"]
    assert Settings.from_env(BASE).metrics_token is None
    configured = Settings.from_env({**BASE, "ADDIN_METRICS_ALLOW": " 10.1.2.3, 10.9.0.0/16,fd00::/8 "})
    assert [str(n) for n in configured.metrics_allow] == ["10.1.2.3/32", "10.9.0.0/16", "fd00::/8"]
    assert Settings.from_env({**BASE, "ADDIN_METRICS_ALLOW": "none"}).metrics_allow == ()
    token = Settings.from_env({**BASE, "ADDIN_METRICS_TOKEN": "0123456789abcdef" * 2})
    assert token.metrics_token == "0123456789abcdef" * 2
    assert "0123456789abcdef" not in repr(token)


def test_oauth_app_needs_a_client_secret() -> None:
    env = {**BASE, "ADDIN_EWS_AUTH": "oauth-app"}
    with pytest.raises(ConfigError, match="^ADDIN_CLIENT_SECRET: "):
        Settings.from_env(env)


def test_plain_http_is_accepted_only_for_loopback() -> None:
    settings = Settings.from_env({**BASE, "ADDIN_EWS_URL": "http://127.0.0.1:8080/EWS/Exchange.asmx"})
    assert settings.ews_url == "http://127.0.0.1:8080/EWS/Exchange.asmx"


def test_postgres_urls_always_use_psycopg3() -> None:
    settings = Settings.from_env({**BASE, "ADDIN_DATABASE_URL": "postgresql://postgres@127.0.0.1/test"})
    assert settings.database_url == "postgresql+psycopg://postgres@127.0.0.1/test"
