"""schemathesis hooks for deploy/schemathesis.sh (loaded by schemathesis.toml).

Two values a schema cannot describe, made real before each call; everything
else is sent as generated.

- Idempotency-Key: a key names one request. Generated keys repeat ("0", the
  shrunk value, many times), and a repeated key with another body is rightly
  refused (422 idempotency_key_reused). A valid generated key (1..255
  characters) gets a unique suffix; an invalid one is sent as generated.
- assignee: must be an agent or a member of the workspace. A valid generated
  assignee (the document's example included) becomes the member the script
  adds; an invalid one (too long, not a string) is sent as generated, and so
  is "", which means unassigned.
"""

from __future__ import annotations

import itertools
from typing import Any

import schemathesis

ASSIGNEE = "fuzz-assignee"  # deploy/schemathesis.sh adds this member
_sequence = itertools.count(1)  # one worker: the same sequence every run


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    headers = case.headers
    if headers:
        for name in list(headers):
            value = headers[name]
            if name.lower() == "idempotency-key" and isinstance(value, str) and 1 <= len(value) <= 255:
                suffix = f"~{next(_sequence)}"
                headers[name] = value[: 255 - len(suffix)] + suffix
    body = case.body
    if isinstance(body, dict) and case.operation.path.endswith(("/tasks", "/assign")):
        value = body.get("assignee")
        if isinstance(value, str) and 1 <= len(value) <= 200:
            body["assignee"] = ASSIGNEE
