-- Steward on PostgreSQL with row-level security: two roles (docs/operations.md#row-level-security-postgresql).
--
--   steward_owner  owns the schema: migrations and `steward db rls` run as it
--                  (STEWARD_DATABASE_MIGRATION_URL).
--   steward_app    the server's requests (STEWARD_DATABASE_URL): reads and writes rows, owns
--                  nothing, so the policies bind it.
--
-- Run as a superuser, once, in the database Steward uses (here `steward`), then replace both
-- passwords:   psql -v ON_ERROR_STOP=1 -d steward -f deploy/postgres-roles.sql
-- The test suite's row-level security run (STEWARD_TEST_RLS=1) gives its role the same grants.

CREATE ROLE steward_owner LOGIN PASSWORD 'change-me-owner';
CREATE ROLE steward_app LOGIN PASSWORD 'change-me-app' NOSUPERUSER NOBYPASSRLS;

-- Nobody else creates objects in the schema (PostgreSQL 14 and older let everyone), and the
-- owner role owns it.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO steward_owner;
GRANT CONNECT, TEMPORARY ON DATABASE steward TO steward_owner, steward_app;
GRANT CREATE ON DATABASE steward TO steward_owner;   -- pg_trgm for the fleet search
GRANT USAGE, CREATE ON SCHEMA public TO steward_owner;
GRANT USAGE ON SCHEMA public TO steward_app;

-- Every table and sequence the owner's migrations create, now and later.
ALTER DEFAULT PRIVILEGES FOR ROLE steward_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO steward_app;
ALTER DEFAULT PRIVILEGES FOR ROLE steward_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO steward_app;

-- An existing installation whose tables another role owns: hand each table and sequence
-- over first (REASSIGN OWNED does not work from the bootstrap superuser, which owns the
-- compose file's database), e.g. in psql:
--   SELECT format('ALTER TABLE %I OWNER TO steward_owner;', tablename)
--     FROM pg_tables WHERE schemaname = 'public' \gexec
--   SELECT format('ALTER SEQUENCE %I OWNER TO steward_owner;', sequencename)
--     FROM pg_sequences WHERE schemaname = 'public' \gexec
-- and grant what already exists:
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO steward_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO steward_app;
