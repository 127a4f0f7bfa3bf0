"""Accrual's service layer: use cases over the models, the HTTP edge (`services.app`, `services.api`,
`services.dashboard`) and the `accrual` command. Importing a service module loads no web framework:
workers and the command line pay for Flask only where they serve HTTP."""

import services.audit  # noqa: F401  registers the audit trail's unit-of-work hooks in every process
