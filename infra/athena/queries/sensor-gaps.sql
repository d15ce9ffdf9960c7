-- Hosts with gaps in their coverage in a window (here 2025-06-01, UTC): no
-- heartbeat from the sensor for longer than `factor` times the status interval
-- (the sensor down, its host off, or cut off from Kafka longer than its spool
-- holds), or records lost (lost_kernel: the kernel's ring buffer overflowed;
-- dropped: the sensor's spool was full). Such a host may have had connections
-- that the archive does not hold; a host not listed here, with no events, had
-- none. Reads sensor_status (infra/athena/sensor_status.sql), not the events.
--
-- Set the window, the sensors' sensor.status_interval_s (10 by default) and the
-- factor in `params`, and the dt range to the window's days and the day before
-- them: the heartbeats before the window tell whether a host was already down
-- when it started (and dt prunes the partitions). A host that sent no heartbeat
-- in the whole dt range is not known here: compare with your inventory.
--
-- gaps, blind_s, longest_gap_s: the stretches longer than factor x interval_s
-- without a heartbeat of the host (between two heartbeats, whatever their
-- sensor runs; from the window's start to the first heartbeat if none came
-- before; from the last heartbeat to the window's end), their part inside the
-- window. lost_kernel, dropped: how much the counters grew, between the
-- heartbeats of one sensor run, up to heartbeats in the window (a run's
-- counters start from 0: its first heartbeat counts whole). runs: sensor runs
-- that sent heartbeats in the window (each restart is a moment unseen).
WITH params AS (
  SELECT
    from_iso8601_timestamp('2025-06-01T00:00:00Z') AS window_start,
    from_iso8601_timestamp('2025-06-02T00:00:00Z') AS window_end,
    10 AS interval_s,
    3 AS factor
),
beats AS (
  SELECT
    s.host.id AS host_id,
    s.host.hostname AS hostname,
    s.source.run_id AS run_id,
    s.source.seq AS seq,
    from_iso8601_timestamp(s."timestamp") AS at,
    s.lost_kernel AS lost_kernel,
    s.dropped AS dropped
  FROM sensor_status s
  CROSS JOIN params p
  WHERE s.dt BETWEEN '2025-05-31' AND '2025-06-01'
    AND from_iso8601_timestamp(s."timestamp") < p.window_end
),
spans AS (
  -- from each heartbeat to the host's next one, or to the window's end
  SELECT
    b.host_id,
    b.at AS span_from,
    COALESCE(lead(b.at) OVER (PARTITION BY b.host_id ORDER BY b.at, b.run_id, b.seq), p.window_end) AS span_to
  FROM beats b
  CROSS JOIN params p
  UNION ALL
  -- from the window's start to the first heartbeat of a host with none before it
  SELECT b.host_id, p.window_start, min(b.at)
  FROM beats b
  CROSS JOIN params p
  GROUP BY b.host_id, p.window_start
  HAVING min(b.at) > p.window_start
),
gaps AS (
  SELECT
    s.host_id,
    count(*) AS gaps,
    sum(date_diff('millisecond', greatest(s.span_from, p.window_start), s.span_to)) AS blind_ms,
    max(date_diff('millisecond', greatest(s.span_from, p.window_start), s.span_to)) AS longest_ms,
    min(greatest(s.span_from, p.window_start)) AS first_gap_at
  FROM spans s
  CROSS JOIN params p
  WHERE s.span_to > p.window_start
    AND date_diff('millisecond', s.span_from, s.span_to) > p.factor * p.interval_s * 1000
  GROUP BY s.host_id
),
growth AS (
  SELECT
    b.host_id,
    b.at,
    b.lost_kernel - COALESCE(lag(b.lost_kernel) OVER (PARTITION BY b.host_id, b.run_id ORDER BY b.seq), 0) AS lost_kernel,
    b.dropped - COALESCE(lag(b.dropped) OVER (PARTITION BY b.host_id, b.run_id ORDER BY b.seq), 0) AS dropped
  FROM beats b
),
losses AS (
  SELECT g.host_id, sum(g.lost_kernel) AS lost_kernel, sum(g.dropped) AS dropped
  FROM growth g
  CROSS JOIN params p
  WHERE g.at >= p.window_start
  GROUP BY g.host_id
),
hosts AS (
  SELECT
    b.host_id,
    max_by(b.hostname, b.at) AS hostname,
    count_if(b.at >= p.window_start) AS heartbeats,
    count(DISTINCT CASE WHEN b.at >= p.window_start THEN b.run_id END) AS runs,
    max(b.at) AS last_heartbeat
  FROM beats b
  CROSS JOIN params p
  GROUP BY b.host_id
)
SELECT
  h.hostname,
  h.host_id,
  h.heartbeats,
  h.runs,
  COALESCE(g.gaps, 0) AS gaps,
  CAST(COALESCE(g.blind_ms, 0) AS double) / 1000 AS blind_s,
  CAST(COALESCE(g.longest_ms, 0) AS double) / 1000 AS longest_gap_s,
  to_iso8601(g.first_gap_at) AS first_gap_at,
  COALESCE(l.lost_kernel, 0) AS lost_kernel,
  COALESCE(l.dropped, 0) AS dropped,
  to_iso8601(h.last_heartbeat) AS last_heartbeat
FROM hosts h
LEFT JOIN gaps g ON g.host_id = h.host_id
LEFT JOIN losses l ON l.host_id = h.host_id
WHERE COALESCE(g.gaps, 0) > 0 OR COALESCE(l.lost_kernel, 0) > 0 OR COALESCE(l.dropped, 0) > 0
ORDER BY COALESCE(g.longest_ms, 0) DESC, COALESCE(l.lost_kernel, 0) + COALESCE(l.dropped, 0) DESC, h.hostname;
