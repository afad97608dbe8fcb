"""openai-python against capgate: only api_key and base_url change.

Key under CAPGATE_TOKEN allows ["POST /v1/chat/completions"];
CAPGATE_CAP_TOKEN's cap is below one call's worst-case reserve. The refused
calls use the SDK's default retries, so it is capgate's `x-should-retry:
false` that keeps the 429 from being retried.
"""

import _harness

_harness.require("openai")

import openai  # noqa: E402 (after the install check)
from openai import OpenAI  # noqa: E402 (after the install check)

e = _harness.env()
report = _harness.Report("openai", openai.__version__)
base = e["CAPGATE_PROXY"] + "/openai/v1"
MESSAGES = [{"role": "user", "content": "Say hello"}]


def describe(err):
    body = getattr(err, "body", None)
    return {
        "status": getattr(err, "status_code", None),
        "code": getattr(err, "code", None),
        "body": body if isinstance(body, (dict, list, str, type(None))) else repr(body),
        "request_id": getattr(err, "request_id", None),
        "is_openai_error": isinstance(err, openai.OpenAIError),
    }


client = OpenAI(api_key=e["CAPGATE_TOKEN"], base_url=base, max_retries=0)

# 1. Plain completion.
r = report.must("chat", lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=50))
report["chat"] = {
    "id": r.id,
    "class": type(r).__name__,
    "content": r.choices[0].message.content,
    "finish_reason": r.choices[0].finish_reason,
    "usage": {"prompt_tokens": r.usage.prompt_tokens, "completion_tokens": r.usage.completion_tokens},
}


# 2. Streamed completion; capgate asks for the usage chunk on our behalf.
def stream():
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=50, stream=True))
    usage = next((c.usage for c in chunks if c.usage is not None), None)
    return {
        "ids": sorted({c.id for c in chunks}),
        "chunks": len(chunks),
        "class": type(chunks[0]).__name__ if chunks else None,
        "text": "".join(c.choices[0].delta.content or "" for c in chunks if c.choices),
        "usage": None if usage is None else {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens},
    }


report["stream"] = report.must("stream", stream)

# 3. Endpoint outside the allowlist: 403 -> openai.PermissionDeniedError.
report.refused("scope", lambda: client.embeddings.create(model="text-embedding-3-small", input="hello"), describe)

# 4. Over the daily cap: 429 -> openai.RateLimitError (default retries).
capped = OpenAI(api_key=e["CAPGATE_CAP_TOKEN"], base_url=base)
report.refused("cap", lambda: capped.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=50), describe)

# 5. Revoked: the next request on the same client is 401 -> openai.AuthenticationError.
report["revoke"] = report.must("revoke", lambda: _harness.revoke(e))
report.refused("revoked", lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=50), describe)

report.emit()
