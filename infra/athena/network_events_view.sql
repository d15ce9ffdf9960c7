-- netmon_events: the Netmon archive with the spec's defaults applied, the view
-- every query in infra/athena/queries/ reads. Create it after network_events.sql,
-- in the same database (docs/athena.md, "Create the view").
--
-- The archive mixes NetworkEvent v1 objects, written before the connection facts
-- existed, and v2 objects. The table reads the fields a v1 object lacks
-- (connection, process_key) as NULL; this view gives them the defaults of
-- shared/spec/netmon.md ("Connection facts"), as every other reader of the
-- contract does: outcome and remote_name '', duration_ms, bytes_sent,
-- bytes_received and netns 0, process_key ''. Never NULL.
--
-- connection keeps its shape (connection.outcome, connection.bytes_sent, ...),
-- and dt and hour stay plain columns, so filters on them still prune partitions.
-- event_time is "timestamp" as a timestamp (milliseconds, UTC), as the Parquet
-- table stores it, so that a query with a range predicate on it runs on either
-- table; here it prunes nothing (filter on dt and hour for that).
-- `netmon query` has the same view, built from the Avro contract
-- (services/archiver/src/query.ts); its test runs this file against it.
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
FROM network_events;
