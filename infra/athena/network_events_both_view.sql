-- netmon_events over both tables, for an archive that went from JSON to Parquet
-- (archiver.format changed from json to parquet on a running archive): the JSON
-- objects of network_events.sql and the Parquet objects of
-- network_events_parquet.sql together. Create it after both tables, instead of
-- network_events_view.sql or network_events_parquet_view.sql (all three create
-- netmon_events with the same columns); the shared queries in queries/ run
-- unchanged.
--
-- Every event is in one of the two tables, never both: the archiver's flush
-- manifests, shared by the two formats, fix each range of offsets once, with its
-- format (docs/athena.md, "The Parquet archive"). Hence UNION ALL. Filters on
-- dt and hour prune the partitions of both tables. The JSON half is the view of
-- network_events_view.sql (defaults for v1 objects, event_time computed); the
-- Parquet half passes its columns through, as network_events_parquet_view.sql does.
CREATE OR REPLACE VIEW netmon_events AS
SELECT
  "type",
  process,
  network_event,
  "timestamp",
  host,
  source,
  CAST(ROW(
    COALESCE(connection.outcome, ''),
    COALESCE(connection.duration_ms, 0),
    COALESCE(connection.bytes_sent, 0),
    COALESCE(connection.bytes_received, 0),
    COALESCE(connection.remote_name, ''),
    COALESCE(connection.netns, 0)
  ) AS ROW(outcome varchar, duration_ms bigint, bytes_sent bigint, bytes_received bigint, remote_name varchar, netns bigint)) AS connection,
  COALESCE(process_key, '') AS process_key,
  try(CAST(from_iso8601_timestamp("timestamp") AS timestamp(3))) AS event_time,
  dt,
  hour
FROM network_events
UNION ALL
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
