-- Top talkers: the binaries whose connections carried the most bytes, across
-- hosts. A Close carries the payload bytes the peer acknowledged
-- (connection.bytes_sent) and the bytes received from it (bytes_received),
-- attributed to the closing process; the other events, and v1 Closes, carry 0.
-- A binary that sends far more than it receives is where data leaves.
-- Add "AND dt BETWEEN '2025-05-01' AND '2025-05-31'" to scan only those days.
SELECT
  process.binary_path AS binary_path,
  sum(connection.bytes_sent) AS bytes_sent,
  sum(connection.bytes_received) AS bytes_received,
  sum(connection.bytes_sent + connection.bytes_received) AS bytes_total,
  count(*) AS connections,
  count(DISTINCT host.id) AS hosts
FROM netmon_events
WHERE network_event.type = 'TcpConnectionClose'
GROUP BY process.binary_path
HAVING sum(connection.bytes_sent + connection.bytes_received) > 0
ORDER BY bytes_total DESC, binary_path
LIMIT 20;
