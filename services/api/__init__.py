"""HTTP blueprints: parse, call one use case, serialise. Never imports Celery."""
