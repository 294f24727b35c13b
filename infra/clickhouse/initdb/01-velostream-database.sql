-- Runs once, on the first start of an empty data volume (docker-entrypoint-initdb.d).
-- VeloStream creates its tables itself (from the Arrow schema); it needs the database.
CREATE DATABASE IF NOT EXISTS velostream;
