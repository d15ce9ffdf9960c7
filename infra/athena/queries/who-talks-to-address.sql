-- Who talks to a given address (here 203.0.113.7): processes that connected to
-- it, and servers that accepted connections from it. daddr is always the remote end.
SELECT
  host.hostname AS hostname,
  process.binary_path AS binary_path,
  network_event.type AS direction,
  network_event.dport AS remote_port,
  count(*) AS connections,
  min("timestamp") AS first_seen,
  max("timestamp") AS last_seen
FROM netmon_events
WHERE network_event.daddr = '203.0.113.7'
  AND network_event.type IN ('TcpConnectionEstablish', 'TcpConnectionAccept')
GROUP BY host.hostname, process.binary_path, network_event.type, network_event.dport
ORDER BY connections DESC, hostname, binary_path;
