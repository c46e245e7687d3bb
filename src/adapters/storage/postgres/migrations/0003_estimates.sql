-- 0003_estimates: expected run time per job name, kept for short-lived invocations.
--
-- Input:  :QML_SCHEMA is replaced by the quoted schema name (validated
--         configuration, never user input) before this runs.
-- Output: the estimates table. Jobs and their history are not touched.
--
-- A cold isolate (a Lambda or Worker invocation) plans how many jobs fit
-- before its deadline with what earlier invocations measured: readEstimates
-- reads every row, writeEstimates upserts the names it carries and keeps
-- the others. Times are bigint epoch milliseconds from the caller's clock.

CREATE TABLE :QML_SCHEMA.estimates (
  name       text PRIMARY KEY,
  ms         bigint NOT NULL,
  updated_at bigint NOT NULL
);
