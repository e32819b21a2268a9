-- schedule.lua: move due jobs from the scheduled registries into their queues.
--
-- KEYS[1]   the wake-up list idle worker processes block on
-- KEYS[2k], KEYS[2k+1]  for each queue: its scheduled registry (rq:scheduled:<q>) and
--           its queue list (rq:queue:<q>)
-- ARGV[1]   now, Unix seconds (float)
-- ARGV[2]   now as RQ writes times, for enqueued_at
-- ARGV[3]   the most jobs to move per queue in one call
--
-- Guarantee: each due job id leaves the registry and enters its queue in one atomic step,
-- so no job is lost or moved twice, whichever scheduler runs it. Returns how many moved.

local moved = 0
for k = 2, #KEYS, 2 do
  local registry, queue = KEYS[k], KEYS[k + 1]
  local due = redis.call('ZRANGEBYSCORE', registry, '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
  for _, job_id in ipairs(due) do
    redis.call('ZREM', registry, job_id)
    local job_key = 'rq:job:' .. job_id
    if redis.call('EXISTS', job_key) == 1 then
      redis.call('HSET', job_key, 'status', 'queued', 'enqueued_at', ARGV[2])
      redis.call('RPUSH', queue, job_id)
      redis.call('LPUSH', KEYS[1], job_id)
      moved = moved + 1
    end
  end
end
if moved > 0 then redis.call('LTRIM', KEYS[1], 0, 255) end
return moved
