"""The access tests' world and their matrix of routes and roles (tests/integration/access)."""
