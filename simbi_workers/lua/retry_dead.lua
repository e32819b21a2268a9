-- retry_dead.lua: move jobs from the dead set (RQ's failed registries) back to their queues.
--
-- KEYS[1]  the wake-up list idle worker processes block on
-- ARGV[1]  now, Unix seconds (float): an entry scored before now has expired
-- ARGV[2]  now as RQ writes times (ISO 8601 with a Z), for enqueued_at
-- ARGV[3], ARGV[4], ...  pairs: queue name, job id (the job's entry in rq:failed:<queue>)
--
-- Guarantee: each job leaves its failed registry and enters the back of its queue in one
-- atomic step, so it is never lost and never queued twice, even when two operators retry
-- it at once. The job starts over: status queued, attempt 0, no failure TTL (PERSIST), and
-- the last failure's ended_at, exc_info and simbi_error are cleared, as RQ's requeue does.
-- Returns one word per pair: 'queued'; 'missing' (not in that registry: already retried,
-- deleted, or never dead); 'expired' (its time in the dead set was up; the entry is
-- removed); 'gone' (its hash was deleted or expired; the entry is removed).

local now = tonumber(ARGV[1])
local replies = {}
local woken = false

for i = 3, #ARGV, 2 do
  local queue, job_id = ARGV[i], ARGV[i + 1]
  local registry = 'rq:failed:' .. queue
  local job_key = 'rq:job:' .. job_id
  local score = redis.call('ZSCORE', registry, job_id)

  if not score then
    replies[#replies + 1] = 'missing'
  elseif tonumber(score) < now then
    redis.call('ZREM', registry, job_id)
    replies[#replies + 1] = 'expired'
  elseif redis.call('EXISTS', job_key) == 0 then
    redis.call('ZREM', registry, job_id)
    replies[#replies + 1] = 'gone'
  else
    redis.call('ZREM', registry, job_id)
    redis.call('PERSIST', job_key)
    redis.call('HDEL', job_key, 'ended_at', 'exc_info', 'simbi_error')
    redis.call('HSET', job_key, 'status', 'queued', 'enqueued_at', ARGV[2], 'simbi_attempt', 0)
    redis.call('SADD', 'rq:queues', 'rq:queue:' .. queue)
    redis.call('RPUSH', 'rq:queue:' .. queue, job_id)
    redis.call('LPUSH', KEYS[1], job_id)
    woken = true
    replies[#replies + 1] = 'queued'
  end
end
if woken then redis.call('LTRIM', KEYS[1], 0, 255) end
return replies
