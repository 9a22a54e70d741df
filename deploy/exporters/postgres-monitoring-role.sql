-- Monitoring role for postgres_exporter (Debian: prometheus-postgres-exporter, which
-- runs as the OS user "prometheus"). pg_monitor grants read access to the statistics
-- views (pg_stat_activity, pg_stat_database, pg_settings...) and nothing else.
-- The role has no password: it logs in over the Unix socket with peer authentication
-- (Debian's default pg_hba.conf line "local all all peer"), so no secret is stored.
--
-- Run once:  sudo -u postgres psql -v ON_ERROR_STOP=1 -f postgres-monitoring-role.sql
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'prometheus') THEN
        CREATE ROLE prometheus WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
            CONNECTION LIMIT 3;
    END IF;
END
$$;
GRANT pg_monitor TO prometheus;
-- The exporter's queries must never hold up the app's.
ALTER ROLE prometheus SET statement_timeout = '5s';
ALTER ROLE prometheus SET lock_timeout = '1s';
