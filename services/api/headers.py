"""Security headers on every response the service gives."""

from __future__ import annotations

from flask import Flask, Response, request

from config import Settings

# JSON answers load nothing and may be framed by nobody. The docs pages (Swagger UI) need their
# scripts and the dashboard sets its own policy, so the policy below is for the API's answers.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


def install_security_headers(app: Flask, settings: Settings) -> None:
    def secure(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        if request.path.startswith("/api/"):
            headers.setdefault("Content-Security-Policy", API_POLICY)
            headers.setdefault("Cache-Control", "no-store")
        # Served over HTTPS (directly, or behind ACCRUAL_TRUSTED_PROXIES saying X-Forwarded-Proto: https),
        # or configured as such: browsers must keep to HTTPS. Browsers ignore it over plain http.
        if settings.session_cookie_secure or request.is_secure:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response

    app.after_request(secure)
