-- Connection durations, longest first: each connection's Close, with the
-- Establish or Accept of the same socket (same cookie on the same host).
-- A v2 Close carries how long the connection lived (connection.duration_ms,
-- from the Establish or Accept, or from the sensor's start for connections older
-- than it) and how it ended (connection.outcome): that duration is used, and the
-- Close needs no opening event in the window (kind '' then). A v1 Close (outcome
-- '', the view's default: v2 Closes always have an outcome) gets the time
-- between its opening event and itself, and is left out when it has none.
WITH opened AS (
  SELECT
    host.id AS host_id,
    network_event.cookie AS cookie,
    network_event.type AS kind,
    process.binary_path AS binary_path,
    from_iso8601_timestamp("timestamp") AS opened_at
  FROM netmon_events
  WHERE network_event.type IN ('TcpConnectionEstablish', 'TcpConnectionAccept')
),
closed AS (
  SELECT
    host.id AS host_id,
    host.hostname AS hostname,
    network_event.cookie AS cookie,
    process.binary_path AS binary_path,
    network_event.daddr AS remote_addr,
    network_event.dport AS remote_port,
    connection.outcome AS outcome,
    connection.duration_ms AS duration_ms,
    from_iso8601_timestamp("timestamp") AS closed_at
  FROM netmon_events
  WHERE network_event.type = 'TcpConnectionClose'
),
paired AS (
  SELECT
    c.hostname,
    COALESCE(o.kind, '') AS kind,
    COALESCE(o.binary_path, c.binary_path) AS binary_path,
    c.remote_addr,
    c.remote_port,
    c.cookie,
    c.outcome,
    CASE
      WHEN c.outcome <> '' THEN c.duration_ms
      ELSE date_diff('millisecond', o.opened_at, c.closed_at)
    END AS duration_ms
  FROM closed c
  LEFT JOIN opened o ON o.host_id = c.host_id AND o.cookie = c.cookie AND o.opened_at <= c.closed_at
)
SELECT hostname, kind, binary_path, remote_addr, remote_port, cookie, outcome, duration_ms
FROM paired
WHERE duration_ms IS NOT NULL
ORDER BY duration_ms DESC, hostname, cookie;
