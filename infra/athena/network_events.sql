-- The Netmon archive as an Athena table. Replace the bucket and prefix
-- (s3://netmon-archive/netmon/events/, the defaults of s3.bucket and s3.prefix)
-- in LOCATION and storage.location.template with yours.
--
-- Objects: gzip NDJSON, one NetworkEvent per line (shared/spec/netmon.md), at
--   <prefix>/dt=YYYY-MM-DD/hour=HH/<topic>+<partition>+<first offset>.json.gz
-- Partition projection computes the partitions from the query's predicates,
-- so new hours need no MSCK REPAIR, no crawler, no ALTER TABLE ADD PARTITION.
-- The archiver's flush manifests under <prefix>/_flushes/ are outside every
-- projected location and never read.
--
-- The columns are the Avro contract's (schemas/avro/network-event.avsc, v2).
-- Objects written before v2 lack connection and process_key: this table reads
-- them as NULL there. Query the view of network_events_view.sql (netmon_events),
-- which gives them the spec's defaults, rather than this table.
CREATE EXTERNAL TABLE IF NOT EXISTS network_events (
  `type` string,
  `process` struct<pid:int,tid:int,ppid:int,uid:bigint,euid:bigint,auid:bigint,cap_inheritable:bigint,cap_permitted:bigint,cap_effective:bigint,secureexec:string,filename:string,binary_path:string,args:string,container_id:string>,
  `network_event` struct<type:string,saddr:string,daddr:string,sport:int,dport:int,cookie:bigint>,
  `timestamp` string,
  `host` struct<hostname:string,id:string>,
  `source` struct<run_id:string,seq:bigint>,
  `connection` struct<outcome:string,duration_ms:bigint,bytes_sent:bigint,bytes_received:bigint,remote_name:string,netns:bigint>,
  `process_key` string
)
PARTITIONED BY (
  `dt` string,
  `hour` int
)
ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://netmon-archive/netmon/events/'
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
  'storage.location.template' = 's3://netmon-archive/netmon/events/dt=${dt}/hour=${hour}/'
);
