"""The standard rate-limit header fields, both sides: what the service says, and how a client paces on it.

The fields are those of the IETF draft "RateLimit header fields for HTTP"
(draft-ietf-httpapi-ratelimit-headers, revisions 08-11: structured-field lists):

    RateLimit-Policy: "clinic";q=20;w=4      the clinic's token bucket: 20 uploads a 4-second window
    RateLimit: "clinic";r=13;t=2             13 left now; the bucket is full again in 2 seconds

The per-clinic limit is a token bucket (``limits.TokenBuckets``): ``q`` is its
burst and ``w`` the seconds it takes to fill from empty (burst / rate, rounded
up), so ``w / q`` is the sustained rate's interval; ``r`` is the whole tokens
left after this request and ``t`` the seconds until the bucket is full again
(the draft's "quota resets"). Every value is a whole number, as the draft
requires; ``Retry-After`` on a 429 stays whole seconds too.

A client that paces (``client_pause``) waits one token's time before its next
request when ``r`` is below the requests it has in flight, instead of meeting
the 429 and its whole second of ``Retry-After``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

POLICY = "clinic"  # the policy's name: one bucket per LPS (SOR code)
POLICY_FIELD, STATE_FIELD = "RateLimit-Policy", "RateLimit"

_ITEM = re.compile(r'^\s*"(?P<name>[^"\\]*)"(?P<params>(?:;[a-z]+=[^;,]*)*)\s*$')


def window_seconds(rate: float, burst: int) -> int:
    """The seconds a bucket takes to fill from empty, rounded up (at least 1)."""
    return max(1, math.ceil(burst / rate - 1e-9))


def policy_header(rate: float, burst: int) -> str:
    return f'"{POLICY}";q={burst};w={window_seconds(rate, burst)}'


def state_header(tokens: float, rate: float, burst: int) -> str:
    """``tokens``: what the bucket holds after this request (a fraction of one is not a request)."""
    remaining = max(0, math.floor(tokens + 1e-9))
    reset = max(0, math.ceil((burst - tokens) / rate - 1e-9))
    return f'"{POLICY}";r={remaining};t={reset}'


def headers(tokens: float, rate: float, burst: int) -> dict[str, str]:
    return {POLICY_FIELD: policy_header(rate, burst), STATE_FIELD: state_header(tokens, rate, burst)}


def _items(value: str | None) -> dict[str, dict[str, int]]:
    """A structured-field list of ``"name";k=v`` items, integer parameters only (the rest left out)."""
    out: dict[str, dict[str, int]] = {}
    for part in (value or "").split(","):
        match = _ITEM.match(part)
        if match is None:
            continue
        params = {}
        for param in match["params"].split(";")[1:]:
            key, _, number = param.partition("=")
            if number.strip().isdigit():
                params[key] = int(number)
        out[match["name"]] = params
    return out


def client_pause(headers_: Mapping[str, str], in_flight: int = 1) -> float:
    """Seconds a client should wait before its next request so as not to empty the bucket: 0 while
    the response says at least ``in_flight`` requests are left, else one token's time for each one
    short. 0 when the fields are missing or unreadable (a server without them: no pacing)."""
    getter = headers_.get
    policy = _items(getter(POLICY_FIELD) or getter(POLICY_FIELD.lower())).get(POLICY)
    state = _items(getter(STATE_FIELD) or getter(STATE_FIELD.lower())).get(POLICY)
    if not policy or not state or "r" not in state or not policy.get("q") or not policy.get("w"):
        return 0.0
    short = in_flight - state["r"]
    if short <= 0:
        return 0.0
    return short * policy["w"] / policy["q"]
