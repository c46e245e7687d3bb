/**
 * dependents: the waiters of the dependency edges (qml_job_deps) of some
 * jobs, each once (the edges' primary key, dep first).
 * Input:  ?1 json array of dependency ids.
 * Output: waiter, one row per distinct waiter, in no particular order.
 */
export const dependents = `
SELECT DISTINCT waiter FROM qml_job_deps WHERE dep IN (SELECT value FROM json_each(?1))`;
