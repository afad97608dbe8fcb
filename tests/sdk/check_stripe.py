"""stripe-python against capgate: only api_key and api_base change.

Key under CAPGATE_TOKEN allows ["POST /v1/payment_intents"] with a cap of
more than $44.99; CAPGATE_CAP_TOKEN's cap is below $19.99. SDK retries are
left at their default so capgate's `Stripe-Should-Retry: false` is what
stops them.
"""

import _harness

_harness.require("stripe")

import stripe  # noqa: E402 (after the install check)

e = _harness.env()
report = _harness.Report("stripe", stripe.VERSION)
base = e["CAPGATE_PROXY"] + "/stripe"


def describe(err):
    return {
        "status": getattr(err, "http_status", None),
        "code": getattr(err, "code", None),
        "error_code": getattr(getattr(err, "error", None), "code", None),
        "json_body": getattr(err, "json_body", None),
        "user_message": getattr(err, "user_message", None),
        "request_id": getattr(err, "request_id", None),
        "is_stripe_error": isinstance(err, stripe.StripeError),
    }


# 1. The global-config style from the README table.
stripe.api_key = e["CAPGATE_TOKEN"]
stripe.api_base = base
pi = report.must("module_create", lambda: stripe.PaymentIntent.create(amount=1999, currency="usd", customer="cus_1"))
report["module_create"] = {"id": pi.id, "object": pi.object, "amount": pi.amount, "currency": pi.currency, "status": pi.status, "class": type(pi).__name__}

# 2. The StripeClient style (a different amount, so it is not a duplicate).
client = stripe.StripeClient(e["CAPGATE_TOKEN"], base_addresses={"api": base})
pi2 = report.must("client_create", lambda: client.v1.payment_intents.create(params={"amount": 2500, "currency": "usd", "customer": "cus_2"}))
report["client_create"] = {"id": pi2.id, "object": pi2.object, "amount": pi2.amount, "class": type(pi2).__name__}

# 3. Endpoint outside the allowlist (a refund): 403 -> stripe.PermissionError.
report.refused("scope", lambda: stripe.Refund.create(payment_intent=pi.id, amount=500), describe)

# 4. Over the daily cap: 429 -> stripe.RateLimitError (not retried).
report.refused("cap", lambda: stripe.PaymentIntent.create(amount=1999, currency="usd", customer="cus_1", api_key=e["CAPGATE_CAP_TOKEN"]), describe)

# 5. Revoked: the very next request on the same client is 401 -> stripe.AuthenticationError.
report["revoke"] = report.must("revoke", lambda: _harness.revoke(e))
report.refused("revoked", lambda: client.v1.payment_intents.create(params={"amount": 300, "currency": "usd", "customer": "cus_3"}), describe)

report.emit()
