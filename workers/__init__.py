"""Celery side: the app, thin tasks, the outbox relay and the scheduler loop."""
