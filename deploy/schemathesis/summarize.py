"""Deduplicated findings of a schemathesis run, from its NDJSON report.

    python summarize.py REPORT.ndjson [--max-body N]

One entry per (check, message, answer): the operations and how many cases hit
it, what the server answered (one example) and a curl that reproduces it ($URL
and $KEY stand for the server and the API key). deploy/schemathesis.sh runs it
after schemathesis.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import shlex
import sys
from collections import OrderedDict
from urllib.parse import urlsplit


def decode(payload: object) -> str | None:
    if payload is None:
        return None
    if isinstance(payload, dict) and "$base64" in payload:
        raw = base64.b64decode(payload["$base64"])
        return raw.decode("utf-8", errors="backslashreplace")
    if isinstance(payload, dict) and "string" in payload:
        return payload["string"]
    return str(payload)


def clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"…[{len(text)} bytes]"


def curl(request: dict, limit: int) -> str:
    parts = urlsplit(request["uri"])
    target = "$URL" + parts.path + (("?" + parts.query) if parts.query else "")
    cmd = ["curl", "-sS", "-i", "-X", request["method"], f'"{target}"']
    for name, values in (request.get("headers") or {}).items():
        for value in values:
            if name.lower() == "authorization":
                cmd += ["-H", '"Authorization: Bearer $KEY"']
            elif name.lower() in {"user-agent", "accept-encoding", "accept", "connection", "content-length"}:
                continue
            elif value == "":
                cmd += ["-H", shlex.quote(f"{name};")]
            else:
                cmd += ["-H", shlex.quote(f"{name}: {value}")]
    body = decode(request.get("body"))
    if body is not None:
        if len(body) > limit:
            cmd += ["--data-binary", f"<{len(body)}-byte body, see the NDJSON report>"]
        else:
            cmd += ["--data-binary", shlex.quote(body)]
    return " ".join(cmd)


def normalize(message: str) -> str:
    lines = [line for line in message.splitlines() if line.strip() and not line.startswith("Expected:")]
    text = re.sub(r"\s+", " ", " | ".join(lines))
    # Generated values differ from case to case: "(was 215, became -1)".
    text = re.sub(r" \((was|became) [^)]*\)", "", text)
    # One entry for every undeclared method the check tried.
    return re.sub(r"^(Unsupported method )?[A-Z]+ returned", r"\1<METHOD> returned", text)


def response_signature(interaction: dict | None) -> str:
    """Status, and the problem's code and field: what tells one refusal from another."""
    if not interaction:
        return ""
    response = interaction.get("response") or {}
    signature = str(response.get("status_code", ""))
    try:
        problem = json.loads(decode(response.get("content")) or "")
    except ValueError:
        return signature
    if isinstance(problem, dict) and "code" in problem:
        signature += f" {problem['code']}"
        if problem.get("field"):
            signature += f" field={problem['field']}"
        detail = str(problem.get("detail", ""))
        # The shape of the detail: quoted values and numbers vary from case to case.
        detail = re.sub(r'"[^"]*"', '"…"', detail)
        signature += " (" + re.sub(r"\d+", "N", detail)[:120] + ")"
    return signature


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("report")
    parser.add_argument("--max-body", type=int, default=400)
    args = parser.parse_args()

    groups: OrderedDict[tuple[str, str, str], dict] = OrderedDict()
    errors: list[str] = []
    with open(args.report, encoding="utf-8") as handle:
        for line in handle:
            event = json.loads(line)
            if "NonFatalError" in event:
                info = event["NonFatalError"].get("info") or {}
                errors.append(f"{event['NonFatalError'].get('label')}: {info.get('title')}: {info.get('message')}")
                continue
            finished = event.get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished["recorder"]
            interactions = recorder.get("interactions") or {}
            for case_id, checks in (recorder.get("checks") or {}).items():
                for check in checks:
                    if check.get("status") == "success":
                        continue
                    failure = (check.get("failure_info") or {}).get("failure") or {}
                    operation = failure.get("operation") or recorder.get("label", "?")
                    key = (
                        f"{failure.get('code', '?')} {check['name']}",
                        normalize(failure.get("message", "")),
                        response_signature(interactions.get(case_id)),
                    )
                    group = groups.get(key)
                    if group is None:
                        group = groups[key] = {"operations": OrderedDict(), "examples": {}}
                    group["operations"][operation] = group["operations"].get(operation, 0) + 1
                    if operation not in group["examples"] and case_id in interactions:
                        group["examples"][operation] = interactions[case_id]

    if not groups and not errors:
        print("no findings")
        return 0
    print(f"{len(groups)} distinct findings (check, message, answer), {sum(len(g['operations']) for g in groups.values())} with their operations")
    for (check, message, signature), group in sorted(groups.items(), key=lambda item: item[0]):
        operations = group["operations"]
        print()
        print(f"* [{check}] {clip(message, args.max_body) or '(no message)'} -> {signature or '?'}")
        print(f"  operations ({sum(operations.values())} cases): " + ", ".join(f"{op} x{n}" for op, n in operations.items()))
        # One example, from the first operation that recorded one.
        for operation, interaction in group["examples"].items():
            response = interaction.get("response") or {}
            body = decode(response.get("content")) or ""
            print(f"  e.g. {operation} -> {response.get('status_code')} {clip(body.strip(), args.max_body)}")
            print(f"  {curl(interaction['request'], args.max_body)}")
            break
    for error in errors:
        print(f"\n! error: {clip(error, args.max_body)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
