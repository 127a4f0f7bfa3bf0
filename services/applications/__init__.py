"""An application's life: intake, screening, re-screening, corrections, review, enrolment, withdrawal."""
