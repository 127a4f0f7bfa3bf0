"""What the tests share: fixtures' helpers, helpers for the tests, and the processes they start.

No test module imports another: what two of them need lives here, in a module named for what it does.
"""
