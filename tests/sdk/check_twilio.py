"""twilio-python against capgate: Basic auth with any account SID as the
username and the vault key as the password; only the Api domain's base_url
changes. capgate puts the real account SID into the path.

Key under CAPGATE_TOKEN allows ["POST /2010-04-01/Accounts/*/Messages.json"];
CAPGATE_CAP_TOKEN's cap is below one SMS segment to +1.
"""

import _harness

_harness.require("twilio")

import twilio  # noqa: E402 (after the install check)
from twilio.base.exceptions import TwilioException, TwilioRestException  # noqa: E402 (after the install check)
from twilio.rest import Client  # noqa: E402 (after the install check)

e = _harness.env()
report = _harness.Report("twilio", twilio.__version__)
base = e["CAPGATE_PROXY"] + "/twilio"
AGENT_SID = "ACfake0000"


def client_for(token):
    c = Client(AGENT_SID, token)
    c.api.base_url = base  # the Api domain (api.twilio.com) of twilio-python 9.x
    return c


def describe(err):
    return {
        "status": getattr(err, "status", None),
        "code": getattr(err, "code", None),
        "uri": getattr(err, "uri", None),
        "msg": getattr(err, "msg", None),
        "is_twilio_rest_error": isinstance(err, TwilioRestException),
        "is_twilio_error": isinstance(err, TwilioException),
    }


client = client_for(e["CAPGATE_TOKEN"])

# 1. One GSM-7 segment to a +1 number.
m = report.must("create", lambda: client.messages.create(to="+15551234567", from_="+15550000000", body="hello"))
report["create"] = {
    "sid": m.sid,
    "class": type(m).__name__,
    "status": m.status,
    "to": m.to,
    "from": m.from_,
    "body": m.body,
    "account_sid": m.account_sid,
    "num_segments": m.num_segments,
    "date_created": None if m.date_created is None else m.date_created.isoformat(),
}

# 2. Endpoint outside the allowlist (placing a call): 403 -> TwilioRestException.
report.refused("scope", lambda: client.calls.create(to="+15551234567", from_="+15550000000", url="http://example.com/twiml"), describe)

# 3. Over the daily cap: 429 -> TwilioRestException.
capped = client_for(e["CAPGATE_CAP_TOKEN"])
report.refused("cap", lambda: capped.messages.create(to="+15551234567", from_="+15550000000", body="hello"), describe)

# 4. Revoked: the next request on the same client is 401 -> TwilioRestException.
report["revoke"] = report.must("revoke", lambda: _harness.revoke(e))
report.refused("revoked", lambda: client.messages.create(to="+15551234567", from_="+15550000000", body="hello again"), describe)

report.emit()
