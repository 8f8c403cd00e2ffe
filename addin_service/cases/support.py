"""Where to get help: the contacts and guidance the reporter sees with every receipt."""

from __future__ import annotations

from typing import Any

from addin_service.settings import Settings

GUIDANCE = (
    "If you have not already, you may reply once, civilly, that you want no further contact. "
    "After that, do not reply again.",
    "Keep everything: do not delete this message or any others from this sender.",
    "The people who handle these reports have been told, and they will decide next steps with you.",
    "The Employee Assistance Program offers confidential support.",
    "If you are in immediate danger, call emergency services now.",
)


def support_contacts(settings: Settings) -> dict[str, Any]:
    """The support block of every report response, from configuration."""
    return {
        "eap": {"name": settings.eap_name, "phone": settings.eap_phone, "url": settings.eap_url},
        "support_24x7": {"name": "24/7 technical support centre", "phone": settings.support_phone, "url": ""},
        "incident_response": {
            "name": "Computer security incident response centre",
            "phone": settings.incident_response_phone,
            "url": "",
        },
        "emergency_number": settings.emergency_number,
        "guidance": list(GUIDANCE),
    }
