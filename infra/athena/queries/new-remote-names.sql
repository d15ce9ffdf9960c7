-- New remote names per host: the DNS names (connection.remote_name) a host's
-- processes connected to on one day, here 2025-06-02 (put today's date), that
-- no process of that host connected to before it in the queried window, here
-- from 2025-05-01. A name first reached today is worth a look: a new dependency,
-- a typo-squatted domain, a command-and-control server. Connections to literal
-- addresses, and v1 events (remote_name '', the view's default), have no name
-- and are left out; widen the window to look further back.
SELECT
  max(host.hostname) AS hostname,
  connection.remote_name AS remote_name,
  min("timestamp") AS first_seen,
  min_by(process.binary_path, "timestamp") AS first_binary,
  min_by(network_event.daddr, "timestamp") AS first_addr,
  count(*) AS connections
FROM netmon_events
WHERE dt BETWEEN '2025-05-01' AND '2025-06-02'
  AND network_event.type = 'TcpConnectionEstablish'
  AND connection.remote_name <> ''
GROUP BY host.id, connection.remote_name
HAVING min(dt) = '2025-06-02'
ORDER BY hostname, first_seen, remote_name;
