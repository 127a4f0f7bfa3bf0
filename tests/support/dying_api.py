"""`accrual api` whose server process dies after an intake committed and before its answer is sent: for
the scenario 9 test.

Run as `python -m tests.support.dying_api api --port N`. The real app is wrapped (the product knows
nothing of it): when `POST /api/v1/applications` has been answered 202 by the app (its transaction
committed, its answer built), the process exits at once with status 1, before gunicorn writes a byte of
the answer. The client sees its connection closed with no answer, as after a crash, an OOM kill or a
lost machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import services.app
from services.cli import main

_create_app = services.app.create_app
INTAKE = "/api/v1/applications"


def _dying_after_intake(wsgi_app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        statuses: list[str] = []

        def noting_start_response(status: str, *args: Any) -> Any:
            statuses.append(status)
            return start_response(status, *args)

        body = wsgi_app(environ, noting_start_response)
        if (
            environ["REQUEST_METHOD"] == "POST"
            and environ["PATH_INFO"] == INTAKE
            and statuses[0][:3] == "202"
        ):
            os._exit(1)
        return body

    return serve


def _create_dying_app(*args: Any, **kwargs: Any) -> Any:
    app = _create_app(*args, **kwargs)
    app.wsgi_app = _dying_after_intake(app.wsgi_app)
    return app


services.app.create_app = _create_dying_app

if __name__ == "__main__":
    main()
