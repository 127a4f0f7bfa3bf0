#!/bin/sh
# Writes the secrets docker-compose.yml requires into .env beside it, which compose reads by itself.
# Run inside the image, as deploy/setup.yml does: docker compose -f deploy/setup.yml run --rm keys
# It never replaces an existing .env: data sealed or chained under its keys could not be opened again.
set -eu

target=${1:-/project/.env}
if [ -e "$target" ]; then
    echo "make-env: $target exists; it is left as it is (move it away first to start afresh)" >&2
    exit 1
fi

hex() { python -c 'import secrets, sys; print(secrets.token_hex(int(sys.argv[1])))' "$1"; }
# All generated before the file is created, so a failure leaves no half-written .env behind.
postgres_password=$(hex 24)
secret_key=$(hex 32)
data_keys=$(accrual keys new k1)
audit_keys=$(accrual keys new a1)

umask 077
set -C  # create the file only if it still does not exist (O_EXCL)
{
    echo "# Written by deploy/make-env.sh. Keep it secret and keep a copy: without ACCRUAL_DATA_KEYS"
    echo "# and ACCRUAL_AUDIT_KEYS the sealed observations and the audit trail cannot be read or verified."
    echo "POSTGRES_PASSWORD=$postgres_password"
    echo "ACCRUAL_SECRET_KEY=$secret_key"
    echo "ACCRUAL_DATA_KEYS=$data_keys"
    echo "ACCRUAL_AUDIT_KEYS=$audit_keys"
} >"$target"
# Written as root in the container: hand it to whoever owns the directory, so compose can read it.
chown "$(stat -c %u:%g "$(dirname "$target")")" "$target"
echo "make-env: wrote $target"
