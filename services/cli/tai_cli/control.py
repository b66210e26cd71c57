"""``trading-ai control halt``: the break-glass kill switch, signed with an operator key.

It needs no console or API account: the request is signed with the operator's Ed25519 key
(``trading-ai keys operator``) and posted to the gateway's break-glass endpoint, which
publishes the halt to risk. Nobody can lock it out by failing logins.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tai_core.breakglass import OperatorSigner
from tai_core.clock import Clock, SystemClock

BREAK_GLASS_PATH = "/api/control/break-glass"
HALT_ACTION = "halt_trading"


class BreakGlassError(RuntimeError):
    """The gateway refused the request or could not be reached; the message says why."""


@dataclass(frozen=True, slots=True)
class HaltSent:
    """What the gateway published."""

    command: str
    message_id: str
    operator: str


def send_halt(
    api_url: str,
    key_file: Path,
    reason: str,
    *,
    clock: Clock | None = None,
    timeout_seconds: float = 10.0,
) -> HaltSent:
    """Sign a halt with the operator key in ``key_file`` and post it to the gateway."""
    parsed = urllib.parse.urlsplit(api_url)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise BreakGlassError(f"the API URL must be http(s)://host[:port], not {api_url!r}")
    try:
        signer = OperatorSigner.from_pem(key_file.read_bytes())
    except (OSError, ValueError) as error:
        raise BreakGlassError(f"cannot load the operator key {key_file}: {error}") from None
    request = signer.sign(HALT_ACTION, reason, (clock or SystemClock()).now())
    body = json.dumps(request.as_json()).encode("utf-8")
    http_request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        api_url.rstrip("/") + BREAK_GLASS_PATH,
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(http_request, timeout=timeout_seconds) as response:  # noqa: S310  # nosec B310 - http(s) only, checked above
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace")[:500]
        raise BreakGlassError(f"the gateway refused the halt ({error.code}): {detail}") from None
    except (urllib.error.URLError, OSError) as error:
        raise BreakGlassError(f"cannot reach the gateway at {api_url}: {error}") from None
    return HaltSent(answer["command"], answer["message_id"], answer["operator"])
