-- Listeners that never accepted: processes that put a socket into the listening
-- state (TcpListen) on a port that no process of the same host and network
-- namespace accepted a connection on afterwards, in the queried window. A bind
-- shell waiting for its operator, a debug port left open, a service nobody uses.
--
-- The accept is matched on host, network namespace and port, not on the process:
-- pre-fork servers (nginx, gunicorn, Postgres) listen in the parent and accept in
-- the workers, and systemd listens for the services it activates, so matching on
-- process_key or pid would report every one of them. process_key identifies the
-- listening process across pid reuse. TcpListen exists since v2: v1 events have
-- none. An accept after the window's end is not seen: query up to now.
WITH listens AS (
  SELECT
    host.id AS host_id,
    max(host.hostname) AS hostname,
    process_key,
    process.pid AS pid,
    process.binary_path AS binary_path,
    connection.netns AS netns,
    network_event.saddr AS local_addr,
    network_event.sport AS port,
    min("timestamp") AS listened_at
  FROM netmon_events
  WHERE network_event.type = 'TcpListen'
  GROUP BY host.id, process_key, process.pid, process.binary_path, connection.netns, network_event.saddr, network_event.sport
),
accepts AS (
  SELECT
    host.id AS host_id,
    connection.netns AS netns,
    network_event.sport AS port,
    max("timestamp") AS last_accept
  FROM netmon_events
  WHERE network_event.type = 'TcpConnectionAccept'
  GROUP BY host.id, connection.netns, network_event.sport
)
SELECT
  l.hostname,
  l.binary_path,
  l.pid,
  l.process_key,
  l.netns,
  l.local_addr,
  l.port,
  l.listened_at
FROM listens l
LEFT JOIN accepts a ON a.host_id = l.host_id AND a.netns = l.netns AND a.port = l.port AND a.last_accept >= l.listened_at
WHERE a.host_id IS NULL
ORDER BY l.listened_at, l.hostname, l.port;
