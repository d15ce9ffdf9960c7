-- netmon_events over the Parquet table (network_events_parquet.sql), for a
-- database whose archive is Parquet only: the shared queries in queries/ read
-- netmon_events and run unchanged. Create it after network_events_parquet.sql,
-- instead of network_events_view.sql (JSON only) or network_events_both_view.sql
-- (an archive that went from JSON to Parquet): all three create netmon_events
-- with the same columns.
--
-- Every Parquet object has every column of NetworkEvent v2, so no default is
-- needed today: the columns pass through untouched, and Athena pushes filters on
-- them down into the Parquet reader (statistics and dictionaries skip row
-- groups). A field added to the contract later is NULL in older objects: it
-- gets its default here with COALESCE, as network_events_view.sql does for v1's.
-- `netmon query` has the same view (services/archiver/src/query.ts); its test
-- runs this file against it.
CREATE OR REPLACE VIEW netmon_events AS
SELECT
  "type",
  process,
  network_event,
  "timestamp",
  host,
  source,
  connection,
  process_key,
  event_time,
  dt,
  hour
FROM network_events_parquet;
