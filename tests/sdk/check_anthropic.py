"""anthropic-sdk-python against capgate: only api_key and base_url change.

Key under CAPGATE_TOKEN allows ["POST /v1/messages"]; CAPGATE_CAP_TOKEN's
cap is below one call's worst-case reserve. The refused calls use the SDK's
default retries, so it is capgate's `x-should-retry: false` that keeps the
429 from being retried.
"""

import _harness

_harness.require("anthropic")

import anthropic  # noqa: E402 (after the install check)
from anthropic import Anthropic  # noqa: E402 (after the install check)

e = _harness.env()
report = _harness.Report("anthropic", anthropic.__version__)
base = e["CAPGATE_PROXY"] + "/anthropic"
MODEL = "claude-sonnet-4-20250514"
MESSAGES = [{"role": "user", "content": "Say hello"}]


def describe(err):
    body = getattr(err, "body", None)
    return {
        "status": getattr(err, "status_code", None),
        "body": body if isinstance(body, (dict, list, str, type(None))) else repr(body),
        "request_id": getattr(err, "request_id", None),
        "is_anthropic_error": isinstance(err, anthropic.AnthropicError),
    }


def text_of(message):
    return "".join(getattr(b, "text", "") for b in message.content)


client = Anthropic(api_key=e["CAPGATE_TOKEN"], base_url=base, max_retries=0)

# 1. Plain message.
m = report.must("create", lambda: client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES))
report["create"] = {"id": m.id, "class": type(m).__name__, "text": text_of(m), "stop_reason": m.stop_reason, "usage": {"input_tokens": m.usage.input_tokens, "output_tokens": m.usage.output_tokens}}


# 2. The streaming helper (accumulates the events into a final Message).
def helper_stream():
    with client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    return {"id": final.id, "text": text, "final_text": text_of(final), "stop_reason": final.stop_reason, "usage": {"input_tokens": final.usage.input_tokens, "output_tokens": final.usage.output_tokens}}


report["stream"] = report.must("stream", helper_stream)


# 3. Raw event stream (create(stream=True)).
def raw_stream():
    events = list(client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True))
    return {"types": [ev.type for ev in events], "id": next((ev.message.id for ev in events if ev.type == "message_start"), None)}


report["raw_stream"] = report.must("raw_stream", raw_stream)

# 4. Endpoint outside the allowlist: 403 -> anthropic.PermissionDeniedError.
report.refused("scope", lambda: client.models.list(), describe)

# 5. Over the daily cap: 429 -> anthropic.RateLimitError (default retries).
capped = Anthropic(api_key=e["CAPGATE_CAP_TOKEN"], base_url=base)
report.refused("cap", lambda: capped.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES), describe)

# 6. Revoked: the next request on the same client is 401 -> anthropic.AuthenticationError.
report["revoke"] = report.must("revoke", lambda: _harness.revoke(e))
report.refused("revoked", lambda: client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES), describe)

report.emit()
