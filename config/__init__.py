"""Configuration read once from ACCRUAL_* environment variables and an optional .env file."""

from config.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
