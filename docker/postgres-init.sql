-- Runs once, when the postgres-data volume is first initialised (files in
-- /docker-entrypoint-initdb.d/ are skipped when the data directory already exists), by psql
-- as the image's bootstrap superuser.
--
-- The image's POSTGRES_USER / POSTGRES_DB (mlflow / mlflow, see compose.yaml) already give
-- MLflow its role and database.  Prefect's server gets a role and a database of its own in
-- the same cluster; its connection URL in compose.yaml uses these credentials.
CREATE ROLE prefect WITH LOGIN PASSWORD 'prefect';
CREATE DATABASE prefect OWNER prefect;

-- Prefect's migrations create pg_trgm (a trusted extension, so the owner could too); doing it
-- here as the superuser keeps the first start independent of that.
\connect prefect
CREATE EXTENSION IF NOT EXISTS pg_trgm;
