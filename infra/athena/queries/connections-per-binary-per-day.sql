-- Outgoing connections per binary per day.
-- Add "AND dt BETWEEN '2025-05-01' AND '2025-05-31'" to scan only those days.
SELECT
  dt,
  process.binary_path AS binary_path,
  count(*) AS connections,
  count(DISTINCT host.id) AS hosts
FROM netmon_events
WHERE network_event.type = 'TcpConnectionEstablish'
GROUP BY dt, process.binary_path
ORDER BY dt, connections DESC, binary_path;
