"""Settings for composing and routing notifications without any server: every mailbox and contact
configured, an EWS endpoint that is never reached."""

from __future__ import annotations

from pathlib import Path

from addin_service.settings import Settings

SECURITY = "security@contoso.com"
FALLBACK = "hr-desk@contoso.com"
INTERNAL_AFFAIRS = "ia@contoso.com"
INVESTIGATIONS = "oi@contoso.com"


def notify_settings(**env: str) -> Settings:
    """The embedded defaults plus every notification setting; ``env`` overrides any of them."""
    values = {
        "ADDIN_EXCHANGE": "ews",
        "ADDIN_EWS_URL": "https://mail.contoso.com/EWS/Exchange.asmx",
        "ADDIN_EWS_AUTH": "basic",
        "ADDIN_EWS_USERNAME": "svc",
        "ADDIN_EWS_PASSWORD": "pw",
        "ADDIN_TENANT_ID": "contoso.com",
        "ADDIN_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        "ADDIN_ACCEPTED_DOMAINS": "contoso.com",
        "ADDIN_SECURITY_MAILBOX": SECURITY,
        "ADDIN_FALLBACK_MAILBOX": FALLBACK,
        "ADDIN_INTERNAL_AFFAIRS_MAILBOX": INTERNAL_AFFAIRS,
        "ADDIN_INVESTIGATIONS_MAILBOX": INVESTIGATIONS,
        "ADDIN_NOTIFY_FROM": "report-harassment@contoso.com",
        "ADDIN_PUBLIC_URL": "https://reports.contoso.com",
        "ADDIN_EAP_PHONE": "+1 555 0100",
        "ADDIN_SUPPORT_PHONE": "+1 555 0199",
        "ADDIN_INCIDENT_RESPONSE_PHONE": "+1 555 0142",
    }
    values.update(env)
    return Settings.from_env(values, cwd=Path("/nonexistent"))
