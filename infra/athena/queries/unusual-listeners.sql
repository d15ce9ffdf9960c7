-- Listeners accepting connections on unusual ports: accepts whose local port
-- (sport: the listening port) is not one of the expected services.
SELECT
  host.hostname AS hostname,
  process.binary_path AS binary_path,
  network_event.sport AS port,
  count(*) AS accepts,
  count(DISTINCT network_event.daddr) AS clients
FROM netmon_events
WHERE network_event.type = 'TcpConnectionAccept'
  AND network_event.sport NOT IN (22, 25, 53, 80, 443, 3306, 5432, 6379, 8080, 8443, 9092)
GROUP BY host.hostname, process.binary_path, network_event.sport
ORDER BY accepts DESC, hostname, port;
