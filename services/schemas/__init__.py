"""Pydantic v2 models at the HTTP edge: the observation vocabulary, requests and responses."""
