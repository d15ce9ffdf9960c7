-- Every event of one container, in time order (container_id as in the events:
-- the full id from the cgroup path).
SELECT
  "timestamp",
  host.hostname AS hostname,
  process.pid AS pid,
  process.binary_path AS binary_path,
  network_event.type AS type,
  network_event.saddr AS local_addr,
  network_event.sport AS local_port,
  network_event.daddr AS remote_addr,
  network_event.dport AS remote_port
FROM netmon_events
WHERE process.container_id = '3f4e8a9c1b2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f'
ORDER BY "timestamp", pid;
