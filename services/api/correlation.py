"""Each request's correlation id: taken from `X-Request-Id` when well formed, else made; answered in
the same header; kept by every audit entry, outbox event and log line the request causes (and, through
the event, by the worker that acts on it: services.provenance)."""

from __future__ import annotations

from flask import Flask, Response, g, request

from services.provenance import REQUEST_ID_HEADER, accepted_request_id, reset_request_id, set_request_id


def _begin() -> None:
    g.request_id = accepted_request_id(request.headers.get(REQUEST_ID_HEADER))
    g.request_id_token = set_request_id(g.request_id)


def _answer(response: Response) -> Response:
    if "request_id" in g:
        response.headers[REQUEST_ID_HEADER] = g.request_id
    return response


def _end(_error: BaseException | None = None) -> None:
    if "request_id_token" in g:
        reset_request_id(g.request_id_token)


def install_correlation(app: Flask) -> None:
    """Registered before every other hook, so that even a shed request is answered with its id."""
    app.before_request(_begin)
    app.after_request(_answer)
    app.teardown_request(_end)
