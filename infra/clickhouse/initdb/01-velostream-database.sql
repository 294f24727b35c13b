-- Runs once, on the first start of an empty data volume (docker-entrypoint-initdb.d).
-- VeloStream creates its tables itself from the Arrow schema, and needs the database.
CREATE DATABASE IF NOT EXISTS velostream;
