-- The sensors' status records (heartbeats) as an Athena table. Replace the
-- bucket and prefix (s3://netmon-archive/netmon/events-status/: the defaults of
-- s3.bucket and s3.prefix, with "-status" appended) in LOCATION and
-- storage.location.template with yours.
--
-- Every sensor sends one every sensor.status_interval_s (10 s by default) with
-- the counters of its run since it started; the enricher publishes each on the
-- status topic (netmon.status.v1) in the same transaction as the events before
-- it, and the archiver writes them exactly once, gzip NDJSON, one record per
-- line (schemas/avro/sensor-status.avsc), at
--   <prefix>-status/dt=YYYY-MM-DD/hour=HH/<status topic>+<partition>+<first offset>.json.gz
-- beside the events' <prefix>/, never inside it: a table reads every object
-- under its LOCATION. Their flush manifests are under <prefix>-status/_flushes/,
-- outside every projected location.
--
-- What it is for: a host with no events in a window either had no connections,
-- or its sensor was down (no heartbeat) or blind (lost_kernel or dropped
-- growing). queries/sensor-gaps.sql lists the hosts of the second kind.
-- dt and hour are the heartbeat's "timestamp" (UTC) truncated.
CREATE EXTERNAL TABLE IF NOT EXISTS sensor_status (
  `timestamp` string,
  `host` struct<hostname:string,id:string>,
  `source` struct<run_id:string,seq:bigint>,
  `seen` bigint,
  `lost_kernel` bigint,
  `spooled` bigint,
  `dropped` bigint,
  `spool_bytes` bigint
)
PARTITIONED BY (
  `dt` string,
  `hour` int
)
ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://netmon-archive/netmon/events-status/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2024-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.hour.type' = 'integer',
  'projection.hour.range' = '0,23',
  'projection.hour.digits' = '2',
  'storage.location.template' = 's3://netmon-archive/netmon/events-status/dt=${dt}/hour=${hour}/'
);
