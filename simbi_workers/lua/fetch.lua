-- fetch.lua: take the next job, highest-priority queue first, and mark it started.
--
-- KEYS[1]  the worker process's processing list (simbi:processing:<process id>)
-- KEYS[2]  the wake-up list: one token is spent per job taken, so tokens left after a
--          burst do not wake idle processes for nothing
-- ARGV[1]  now, Unix seconds (float)
-- ARGV[2]  now as RQ writes times (ISO 8601 with a Z), for the job's started_at
-- ARGV[3]  the RQ worker name, written into the job hash
-- ARGV[4]  the started-registry entry suffix (":" .. process id)
-- ARGV[5]  grace seconds added to a job's timeout for its started-registry expiry
-- ARGV[6..] queue names, highest priority first
--
-- Guarantee: the job id moves from its queue into the processing list in one atomic
-- step, so at every moment it is in a Redis list that someone will look at; it never
-- lives only in a process's memory. A job whose hash has vanished (expired, deleted) is
-- dropped from the processing list and the next one is tried.
-- Returns {queue, job_id, field1, value1, ...} or nil when every queue is empty.

local processing = KEYS[1]
local now = tonumber(ARGV[1])
local grace = tonumber(ARGV[5])

for i = 6, #ARGV do
  local queue = ARGV[i]
  while true do
    local job_id = redis.call('LMOVE', 'rq:queue:' .. queue, processing, 'LEFT', 'RIGHT')
    if not job_id then break end

    local job_key = 'rq:job:' .. job_id
    if redis.call('EXISTS', job_key) == 1 then
      local timeout = tonumber(redis.call('HGET', job_key, 'timeout')) or 60
      redis.call('HSET', job_key, 'status', 'started', 'started_at', ARGV[2],
                 'last_heartbeat', ARGV[2], 'worker_name', ARGV[3], 'simbi_queue', queue)
      redis.call('ZADD', 'rq:wip:' .. queue, now + timeout + grace, job_id .. ARGV[4])
      redis.call('LPOP', KEYS[2])
      local fields = redis.call('HGETALL', job_key)
      local reply = {queue, job_id}
      for j = 1, #fields do reply[#reply + 1] = fields[j] end
      return reply
    end
    redis.call('LREM', processing, -1, job_id)
  end
end
return nil
