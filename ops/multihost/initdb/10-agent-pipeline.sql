-- The pipeline's store beside Dagster's own database on the one server: its own role and database.
-- The password here is the compose file's example: change both before exposing the server.
CREATE ROLE agent_pipeline LOGIN PASSWORD 'agent_pipeline';
CREATE DATABASE agent_pipeline OWNER agent_pipeline;
