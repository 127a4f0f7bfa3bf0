"""The reference of bench/intake.py: a bare Flask endpoint storing the JSON body as one row, under gunicorn.

    INTAKE_REFERENCE_DATABASE_URL=postgresql+psycopg://... python -m bench.intake_reference --port 8001

`POST /api/v1/applications` inserts the parsed body as one JSONB value into the table `submissions` with
SQLAlchemy Core (a transaction per request) and answers 202 with the row's id; `GET /healthz` answers 200.
gunicorn is set up as `accrual api` sets up its own (gthread, ACCRUAL_API_WORKERS x ACCRUAL_API_THREADS,
the access log on standard output, the same graceful timeout), the engine as Accrual makes one.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from flask import Flask, Response, jsonify, request
from sqlalchemy import BigInteger, Column, DateTime, MetaData, Table, func, insert
from sqlalchemy.dialects.postgresql import JSONB

from models.db import make_engine

submissions = Table(
    "submissions",
    MetaData(),
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("body", JSONB, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


def create_app(url: str) -> Flask:
    app, engine = Flask(__name__), make_engine(url)

    @app.post("/api/v1/applications")
    def submit() -> tuple[Response, int]:
        with engine.begin() as connection:
            row_id = connection.execute(
                insert(submissions).values(body=request.get_json()).returning(submissions.c.id)
            ).scalar_one()
        return jsonify({"id": row_id, "status": "submitted"}), 202

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        return jsonify({"status": "ok"}), 200

    return app


def main() -> None:
    from gunicorn.app.base import BaseApplication

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8001)
    port, url = parser.parse_args().port, os.environ["INTAKE_REFERENCE_DATABASE_URL"]
    engine = make_engine(url)
    submissions.metadata.create_all(engine)  # before the workers fork
    engine.dispose()

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"127.0.0.1:{port}")
            self.cfg.set("workers", int(os.environ["ACCRUAL_API_WORKERS"]))
            self.cfg.set("threads", int(os.environ["ACCRUAL_API_THREADS"]))
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", "-")
            self.cfg.set("access_log_format", '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(L)ss')
            self.cfg.set("graceful_timeout", 20)

        def load(self) -> Any:
            return create_app(url)  # in each worker, after the fork

    Server().run()


if __name__ == "__main__":
    main()
