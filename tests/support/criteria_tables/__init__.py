"""One table of cases per bundled trial (tests/support/criteria_cases.py says what a case checks)."""

from tests.support.criteria_tables import admscc, nct03239535, nct06359912, nl003

TRIALS = (nct06359912.TRIAL, nct03239535.TRIAL, nl003.TRIAL, admscc.TRIAL)
