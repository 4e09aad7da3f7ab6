#!/bin/sh
# Run once by the postgres image after initdb: its own pg_hba.conf line ("host all all all")
# does not match replication connections, which cdcd's stream is.
set -eu
echo "host replication cdc all scram-sha-256" >> "$PGDATA/pg_hba.conf"
