"""Accrual's service layer: use cases over the models, the HTTP edge (`services.app`, `services.api`,
`services.dashboard`) and the `accrual` command.

Importing the package loads nothing: `import services.eligibility` loads the pure rule engine alone.
The audit trail's unit-of-work hooks are registered by the composition roots (`services.app`,
`services.cli`, `workers.celery_app`) and by every use case that writes an audit note.

Two rules every use case keeps:
- It speaks the domain: it refuses with an error of `services.errors` (`NotFound`, `Conflict`,
  `InvalidInput`...) and returns domain results; only the edge knows HTTP (`services.problems` maps
  each error to its RFC 9457 problem in one table).
- It takes a `Session` and never commits: its caller (an HTTP view, a task, a command) opens the
  transaction with `Database.transaction()`, which commits when the block ends and rolls back on any
  error. A use case takes the `Database` instead only when one transaction cannot do its work, and
  its docstring says why: a retry after losing a race (intake), work in batches (re-screening,
  re-sealing, counting), or a network call no transaction may span (webhook and e-mail sends).
"""
