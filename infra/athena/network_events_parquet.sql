-- The Netmon archive written with archiver.format: parquet, as an Athena table.
-- Replace the bucket and prefix (s3://netmon-archive/netmon/events-parquet/: the
-- defaults of s3.bucket and s3.prefix, with "-parquet" appended) in LOCATION and
-- storage.location.template with yours.
--
-- Objects: Parquet (zstd pages, row groups of 122,880 rows), one row per
-- NetworkEvent (shared/spec/netmon.md), at
--   <prefix>-parquet/dt=YYYY-MM-DD/hour=HH/<topic>+<partition>+<first offset>.parquet
-- beside the JSON table's <prefix>/, never inside it: a table reads every
-- object under its LOCATION. The flush manifests of both formats are under
-- <prefix>/_flushes/, outside both.
--
-- The columns are the Avro contract's (schemas/avro/network-event.avsc, v2),
-- nested as the JSON has them, typed as the contract types them (int, bigint,
-- string; the enum network_event.type as a string), read by name. "timestamp"
-- stays the RFC 3339 string; event_time is the same instant as a timestamp in
-- milliseconds (INT64 TIMESTAMP_MILLIS in the files), for range predicates:
-- Parquet's statistics let Athena skip row groups outside the range.
-- Every object has every v2 column (the archiver writes v1 records with the
-- spec's defaults). Query the view of network_events_parquet_view.sql (or, for
-- an archive that went from JSON to Parquet, network_events_both_view.sql).
CREATE EXTERNAL TABLE IF NOT EXISTS network_events_parquet (
  `type` string,
  `process` struct<pid:int,tid:int,ppid:int,uid:bigint,euid:bigint,auid:bigint,cap_inheritable:bigint,cap_permitted:bigint,cap_effective:bigint,secureexec:string,filename:string,binary_path:string,args:string,container_id:string>,
  `network_event` struct<type:string,saddr:string,daddr:string,sport:int,dport:int,cookie:bigint>,
  `timestamp` string,
  `host` struct<hostname:string,id:string>,
  `source` struct<run_id:string,seq:bigint>,
  `connection` struct<outcome:string,duration_ms:bigint,bytes_sent:bigint,bytes_received:bigint,remote_name:string,netns:bigint>,
  `process_key` string,
  `event_time` timestamp
)
PARTITIONED BY (
  `dt` string,
  `hour` int
)
STORED AS PARQUET
LOCATION 's3://netmon-archive/netmon/events-parquet/'
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
  'storage.location.template' = 's3://netmon-archive/netmon/events-parquet/dt=${dt}/hour=${hour}/'
);
