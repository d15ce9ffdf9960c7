-- Refused connects per host per hour: Closes whose connect was answered with a
-- RST (connection.outcome 'refused'), by host and by the event's UTC hour (the
-- dt and hour partitions). A burst is a port scan from that host, or a client
-- whose server is down. 'timeout' and 'unreachable' count the same way.
-- Add "AND dt BETWEEN '2025-05-01' AND '2025-05-31'" to scan only those days.
SELECT
  dt,
  hour,
  host.hostname AS hostname,
  count(*) AS refused,
  count(DISTINCT network_event.daddr) AS remote_addrs,
  count(DISTINCT network_event.dport) AS remote_ports
FROM netmon_events
WHERE network_event.type = 'TcpConnectionClose'
  AND connection.outcome = 'refused'
GROUP BY dt, hour, host.hostname
ORDER BY dt, hour, hostname;
