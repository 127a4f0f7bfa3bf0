"""The reference for bench/intake.py: a bare Flask endpoint that stores one JSON row, under gunicorn.

Usage (started by bench/intake.py; by hand only for a look):

    INTAKE_REFERENCE_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/some_db \\
        python bench/intake_reference.py [--host 127.0.0.1] [--port 8001]

`POST /api/v1/applications` parses the JSON body and inserts it, as one JSONB value, into the table
`submissions` with SQLAlchemy Core (one transaction per request), then answers 202 with the new row's
id; `GET /readyz` answers 200 when the database does. The table is created before the server forks.

The server is set up as `accrual api` sets up its own: gunicorn's gthread worker class with
ACCRUAL_API_WORKERS workers (default 2) of ACCRUAL_API_THREADS threads (default 4), the access log on
standard output in the same format, the same graceful timeout; the engine is made as Accrual makes its
PostgreSQL engine (pool_pre_ping, a 5 s connect timeout, hidden parameters, the default pool).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from flask import Flask, Response, jsonify, request
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    MetaData,
    Table,
    create_engine,
    func,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

DATABASE_URL_VARIABLE = "INTAKE_REFERENCE_DATABASE_URL"

metadata = MetaData()
submissions = Table(
    "submissions",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("body", JSONB, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


def make_engine(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True, hide_parameters=True, connect_args={"connect_timeout": 5})


def create_app(engine: Engine) -> Flask:
    app = Flask(__name__)

    @app.post("/api/v1/applications")
    def submit() -> tuple[Response, int]:
        body = request.get_json()
        with engine.begin() as connection:
            new_id = connection.execute(insert(submissions).values(body=body).returning(submissions.c.id))
            row_id = new_id.scalar_one()
        return jsonify({"id": row_id, "status": "submitted"}), 202

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return jsonify({"status": "ok"}), 200

    return app


def serve(host: str, port: int, url: str, workers: int, threads: int) -> None:
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            # As services/cli.py `api` configures gunicorn.
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", "-")
            self.cfg.set("access_log_format", '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(L)ss')
            self.cfg.set("graceful_timeout", 20)

        def load(self) -> Any:
            return create_app(make_engine(url))  # in each worker, after the fork

    _Server().run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    url = os.environ.get(DATABASE_URL_VARIABLE)
    if not url:
        parser.error(f"set {DATABASE_URL_VARIABLE} to the database's SQLAlchemy URL")
    engine = make_engine(url)
    metadata.create_all(engine)
    engine.dispose()
    serve(
        args.host,
        args.port,
        url,
        int(os.environ.get("ACCRUAL_API_WORKERS", "2")),
        int(os.environ.get("ACCRUAL_API_THREADS", "4")),
    )


if __name__ == "__main__":
    main()
