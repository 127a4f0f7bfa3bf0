"""Trials and their sites: registry import, recruiting status, criteria and amendments, bundled seeds."""
