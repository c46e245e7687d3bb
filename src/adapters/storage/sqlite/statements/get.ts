import { JOB_COLUMN_LIST } from "./fragments.js";

/**
 * get
 * Input:  ?1 json array of ids.
 * Output: JOB_COLUMN_LIST of the jobs that exist, in no particular order
 *         (the caller puts them in the order asked).
 */
export const get = `SELECT ${JOB_COLUMN_LIST} FROM qml_jobs WHERE id IN (SELECT value FROM json_each(?1))`;
