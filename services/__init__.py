"""Accrual's service layer: use cases over the models, the HTTP edge (`services.app`, `services.api`,
`services.dashboard`) and the `accrual` command.

Importing the package loads nothing: `import services.eligibility` loads the pure rule engine alone.
The audit trail's unit-of-work hooks are registered by the composition roots (`services.app`,
`services.cli`, `workers.celery_app`) and by every use case that writes an audit note.
"""
