"""What tells other systems and people what changed: signed webhooks, their targets and delivery, e-mail."""
