-- Connection durations: each Establish or Accept paired with the Close of the
-- same socket (same cookie on the same host), longest first.
WITH opened AS (
  SELECT
    host.id AS host_id,
    host.hostname AS hostname,
    network_event.cookie AS cookie,
    network_event.type AS kind,
    process.binary_path AS binary_path,
    network_event.daddr AS remote_addr,
    network_event.dport AS remote_port,
    from_iso8601_timestamp("timestamp") AS opened_at
  FROM network_events
  WHERE network_event.type IN ('TcpConnectionEstablish', 'TcpConnectionAccept')
),
closed AS (
  SELECT
    host.id AS host_id,
    network_event.cookie AS cookie,
    max(from_iso8601_timestamp("timestamp")) AS closed_at
  FROM network_events
  WHERE network_event.type = 'TcpConnectionClose'
  GROUP BY host.id, network_event.cookie
)
SELECT
  o.hostname,
  o.kind,
  o.binary_path,
  o.remote_addr,
  o.remote_port,
  o.cookie,
  date_diff('millisecond', o.opened_at, c.closed_at) AS duration_ms
FROM opened o
JOIN closed c ON c.host_id = o.host_id AND c.cookie = o.cookie AND c.closed_at >= o.opened_at
ORDER BY duration_ms DESC, o.cookie;
