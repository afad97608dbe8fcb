"""resend-python against capgate: only resend.api_key and the API URL change.

resend-python 2.x reads its base URL from the module attribute
`resend.api_url` (initialised from the RESEND_API_URL environment variable,
not RESEND_BASE_URL). This script sets the attribute.

Key under CAPGATE_TOKEN allows ["POST /emails"]; CAPGATE_CAP_TOKEN's cap is
below the price of one two-recipient email.
"""

import _harness

_harness.require("resend")

import resend  # noqa: E402 (after the install check)
from resend.exceptions import ResendError  # noqa: E402 (after the install check)
from resend.version import get_version  # noqa: E402 (after the install check)

e = _harness.env()
report = _harness.Report("resend", get_version())
resend.api_url = e["CAPGATE_PROXY"] + "/resend"
EMAIL = {"from": "a@example.com", "to": ["b@example.com", "c@example.com"], "subject": "hi", "html": "<p>x</p>"}


def describe(err):
    return {
        "status": getattr(err, "code", None),
        "error_type": getattr(err, "error_type", None),
        "is_resend_error": isinstance(err, ResendError),
    }


def with_key(token, fn):
    resend.api_key = token
    return fn()


# 1. One email to two recipients.
sent = report.must("send", lambda: with_key(e["CAPGATE_TOKEN"], lambda: resend.Emails.send(EMAIL)))
report["send"] = {"id": sent["id"], "class": type(sent).__name__}

# 2. Endpoint outside the allowlist (listing domains): 403 -> ResendError.
report.refused("scope", lambda: with_key(e["CAPGATE_TOKEN"], lambda: resend.Domains.list()), describe)

# 3. Over the daily cap: 429 -> ResendError.
report.refused("cap", lambda: with_key(e["CAPGATE_CAP_TOKEN"], lambda: resend.Emails.send(EMAIL)), describe)

# 4. Revoked: the next request is 401 -> ResendError.
report["revoke"] = report.must("revoke", lambda: _harness.revoke(e))
report.refused("revoked", lambda: with_key(e["CAPGATE_TOKEN"], lambda: resend.Emails.send(EMAIL)), describe)

report.emit()
