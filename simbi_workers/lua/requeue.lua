-- requeue.lua: put every job of a dead or stopped worker process back into its queue.
--
-- KEYS[1]  the process's processing list (simbi:processing:<process id>)
-- KEYS[2]  the wake-up list idle worker processes block on
-- ARGV[1]  the process's started-registry entry suffix (":" .. process id)
-- ARGV[2]  "1" when the process died: each job's run counts as an attempt (simbi_attempt
--          + 1) and simbi_died marks it, so a job that kills its process every time ends
--          in the dead set instead of looping; "0" for a shutdown, which does not count
--
-- Guarantee: each job id leaves the processing list and enters the front of its queue in
-- one atomic step, so a job is never lost and never in two places. Returns the job ids.

local moved = {}
while true do
  local job_id = redis.call('LPOP', KEYS[1])
  if not job_id then break end
  local job_key = 'rq:job:' .. job_id
  -- The queue fetch.lua took it from, not 'origin', which any client may have written.
  local queue = redis.call('HGET', job_key, 'simbi_queue') or redis.call('HGET', job_key, 'origin')
  if queue then
    redis.call('ZREM', 'rq:wip:' .. queue, job_id .. ARGV[1])
    local worker = redis.call('HGET', job_key, 'simbi_worker')
    if worker then redis.call('ZREM', 'simbi:slots:' .. worker, job_id .. ARGV[1]) end
    redis.call('HSET', job_key, 'status', 'queued')
    if ARGV[2] == '1' then
      redis.call('HINCRBY', job_key, 'simbi_attempt', 1)
      redis.call('HSET', job_key, 'simbi_died', '1')
    end
    redis.call('LPUSH', 'rq:queue:' .. queue, job_id)
    redis.call('LPUSH', KEYS[2], job_id)
    moved[#moved + 1] = job_id
  end
end
return moved
