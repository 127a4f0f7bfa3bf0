"""Randomisation at enrolment (contract v1.2): stratified permuted blocks and Pocock-Simon minimisation,
allocated in the enrolment transaction, the arm sealed at rest, and every allocation verifiable against
the scheme's commitment.

The arithmetic is pure (draws, blocks, minimisation, design): no database, no web, no configuration, so
that `accrual allocation verify` and an outsider's script reach the same arms from the same seed. The
database side (schemes, allocations) and the verification use it."""
