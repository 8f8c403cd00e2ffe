"""Settings: defaults serve the embedded case; every bad value names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from addin_service.cases.origin import analyze_origin
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
        ("ADDIN_EVIDENCE_URL", "file://evidence-host/srv/evidence"),  # would be read as /srv/evidence here
        ("ADDIN_AUTHORITY", "http://login.example.com"),
        ("ADDIN_AUTHORITY", "https://login.microsoftonline.com?tenant=x"),  # the metadata URL is appended
        ("ADDIN_GRAPH_URL", "https://graph.microsoft.com/v1.0#x"),
        ("ADDIN_PUBLIC_URL", "https://reports.contoso.com/?a=1"),
        ("ADDIN_REQUIRED_SCOPE", "access_as_user Mail.Read"),
        ("ADDIN_TRUSTED_AUTHSERV_IDS", "mx.contoso.com, gw vendor;"),
        ("ADDIN_EAP_URL", "javascript:alert(1)"),
        ("ADDIN_EAP_URL", "eap.contoso.com"),
        ("ADDIN_EAP_PHONE", "+1 555 0100\r\nBcc: someone@example.net"),
        ("ADDIN_INVESTIGATIONS_NAME", "Office of\x07Investigations"),
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


@pytest.mark.parametrize("url", ["file:///srv/evidence", "file://localhost/srv/evidence"])
def test_a_local_file_url_is_an_evidence_folder_on_this_machine(url: str) -> None:
    assert Settings.from_env({**BASE, "ADDIN_EVIDENCE_URL": url}).evidence_path == Path("/srv/evidence")


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


# -- ADDIN_DATABASE_URL: refused at start, not at the first connection ----------------------


@pytest.mark.parametrize(
    "value",
    [
        "sqlite",  # not a URL at all
        "sqlite://relative.db",  # two slashes: "relative.db" is read as a host
        "sqlitefoo://x",  # neither SQLite nor PostgreSQL
        "sqlite+aiosqlite:///var/addin.db",  # a driver the database layer cannot load
        "postgresql://postgres@[::1/x",  # an unclosed IPv6 bracket
        "postgresql://postgres@db:99999/x",  # no such port
        "postgresql:nope",  # no "//"
        "sqlite:///",  # no file named
        "sqlite://",  # in memory
        "sqlite:///:memory:",  # in memory: every case lost at restart
        "sqlite:///file:cases?mode=memory&uri=true",  # in memory, through a URI filename
    ],
)
def test_a_database_url_the_database_layer_cannot_use_stops_start_up_saying_what_form_is_expected(
    value: str,
) -> None:
    """These used to pass, then crash with a traceback at the first connection (or, in memory, lose
    every case at restart); they must stop start-up as every other bad variable does."""
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, "ADDIN_DATABASE_URL": value})
    message = str(err.value)
    assert message.startswith("ADDIN_DATABASE_URL: ")
    assert "sqlite:///" in message or "postgresql://user@host" in message  # the form to use


def test_a_database_url_naming_a_folder_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, "ADDIN_DATABASE_URL": f"sqlite:///{tmp_path}"})
    assert str(err.value).startswith("ADDIN_DATABASE_URL: names a folder")


@pytest.mark.parametrize(
    "value",
    ["postgresql://report:hunter2@[::1/cases", "postgresql://report:hunter2@db:99999/cases",
     "sqlite://report:hunter2@db/cases.db", "sqlite:///:memory:?password=hunter2"],
)
def test_a_refused_database_url_never_shows_its_password(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, "ADDIN_DATABASE_URL": value})
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    ("value", "used"),
    [
        ("sqlite:////var/lib/addin/addin.db", "sqlite:////var/lib/addin/addin.db"),
        ("sqlite:///var/addin.db", "sqlite:///var/addin.db"),  # relative to the working directory
        ("sqlite+pysqlite:////var/lib/addin/addin.db", "sqlite+pysqlite:////var/lib/addin/addin.db"),
        ("postgres://report@db.contoso.com/cases", "postgresql+psycopg://report@db.contoso.com/cases"),
        ("postgresql+psycopg2://report:pw@[::1]:5433/cases", "postgresql+psycopg://report:pw@[::1]:5433/cases"),
        ("postgresql:///cases", "postgresql+psycopg:///cases"),  # the local socket
        (" postgresql://report@db/cases\n", "postgresql+psycopg://report@db/cases"),  # read from a file
    ],
)
def test_a_database_file_or_server_is_accepted_and_postgresql_goes_through_psycopg3(value: str, used: str) -> None:
    assert Settings.from_env({**BASE, "ADDIN_DATABASE_URL": value}).database_url == used


# -- ADDIN_ACCEPTED_DOMAINS: a typo must not turn spoof detection off ------------------------


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("@contoso.com", "'@contoso.com'"),
        ("not a domain!, @@", "'not a domain!'"),
        ("contoso.com, @@", "'@@'"),
        ("contoso", "'contoso'"),
        ("contoso..com", "'contoso..com'"),
        ("-contoso.com", "'-contoso.com'"),
        ("contoso_mail.com", "'contoso_mail.com'"),
        ("10.1.2.3", "'10.1.2.3'"),
        ("alex@contoso.com", "'alex@contoso.com'"),
        ("x" * 64 + ".com", "is not a domain name"),
    ],
)
def test_an_accepted_domain_that_is_not_a_domain_name_stops_start_up_naming_it(value: str, named: str) -> None:
    """Refused entries used to be kept as they were and never matched a sender: a message claiming
    morgan@contoso.com, received anonymously, was then "external" instead of "spoofed-internal"."""
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, "ADDIN_ACCEPTED_DOMAINS": value})
    message = str(err.value)
    assert message.startswith("ADDIN_ACCEPTED_DOMAINS: ")
    assert f"{named} is not a domain name" in message or named in message.split(" (got ")[0]


def test_accepted_domains_are_trimmed_lower_cased_and_internationalised_ones_idna_encoded() -> None:
    """Sender domains are compared in their IDNA form (``origin_headers.domain_of``), so an
    accepted domain written in Unicode is kept in that form too; a trailing dot is tolerated."""
    settings = Settings.from_env({**BASE, "ADDIN_ACCEPTED_DOMAINS": " Contoso.COM ,fabrikam.com., Bücher.de,"})
    assert settings.accepted_domains == ("contoso.com", "fabrikam.com.", "xn--bcher-kva.de")


def test_an_internationalised_accepted_domain_makes_an_anonymous_sender_claiming_it_a_spoof() -> None:
    settings = Settings.from_env({**BASE, "ADDIN_ACCEPTED_DOMAINS": "bücher.de"})
    headers = [("From", "morgan@bücher.de"), ("X-MS-Exchange-Organization-AuthAs", "Anonymous")]

    analysis = analyze_origin(headers, settings.accepted_domains)

    assert analysis.verdict == "spoofed-internal"


# -- durations: bounded, so a huge one cannot pass and then break the worker ----------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ADDIN_ESCALATE_AFTER", "1000000d"),
        ("ADDIN_ESCALATE_AFTER", "366d"),
        ("ADDIN_ESCALATE_AFTER", "31536001"),
        ("ADDIN_ESCALATE_AFTER", "9" * 5000),  # beyond the interpreter's own limit for int()
        ("ADDIN_RATE_LIMIT", "20/1000000d"),
    ],
)
def test_a_duration_over_a_year_stops_start_up_saying_the_limit(variable: str, value: str) -> None:
    """ADDIN_ESCALATE_AFTER=1000000d used to pass; the worker then failed with OverflowError on
    every loop and no case was ever escalated."""
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, variable: value})
    assert str(err.value).startswith(f"{variable}: must be at most 365d")


def test_a_duration_of_up_to_a_year_is_accepted() -> None:
    assert Settings.from_env({**BASE, "ADDIN_ESCALATE_AFTER": "365d"}).escalate_after == 365 * 86400
    assert Settings.from_env({**BASE, "ADDIN_ESCALATE_AFTER": "8760h"}).escalate_after == 365 * 86400
    assert Settings.from_env({**BASE, "ADDIN_RATE_LIMIT": "5/365d"}).rate_limit == (5, 365 * 86400)
