"""Requests racing from separate client processes: each its own interpreter and connection, all started
first and then released together, so that they reach the server as close together as processes can."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

# The client: only the standard library, so that fifty of them start in a second or two. It says
# `ready` once started, waits for a line on stdin, sends its POST and prints the answer as JSON.
CLIENT = """
import json, sys, urllib.error, urllib.request
url, token, body = sys.argv[1], sys.argv[2], sys.argv[3].encode()
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
request = urllib.request.Request(url, data=body, method="POST", headers=headers)
print("ready", flush=True)
sys.stdin.readline()
try:
    with urllib.request.urlopen(request, timeout=120) as response:
        status, text = response.status, response.read()
except urllib.error.HTTPError as error:
    status, text = error.code, error.read()
print(json.dumps({"status": status, "body": json.loads(text or b"null")}), flush=True)
"""


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


def race_posts(requests: list[tuple[str, str]], body: Any = None) -> list[Answer]:
    """POST `body` to each (url, bearer token) from a process of its own, all released at once; the
    answers in the order of `requests`."""
    clients = [
        subprocess.Popen(
            [sys.executable, "-S", "-c", CLIENT, url, token, json.dumps(body or {})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for url, token in requests
    ]
    try:
        for client in clients:
            assert client.stdout is not None and client.stdout.readline().strip() == "ready"
        for client in clients:  # the release: one line each, written back to back
            assert client.stdin is not None
            client.stdin.write("go\n")
            client.stdin.flush()
        answers = []
        for client in clients:
            output, _ = client.communicate(timeout=180)
            answer = json.loads(output)
            answers.append(Answer(int(answer["status"]), answer["body"]))
        return answers
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.wait()
