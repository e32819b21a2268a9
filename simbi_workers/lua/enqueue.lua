-- enqueue.lua: write new jobs and put them in their queue (or schedule them), taking each
-- unique job's lock in the same step. The one enqueue path of every client: Python
-- (simbi_workers/client.py), TypeScript (clients/typescript) and Ruby (clients/ruby).
--
-- ARGV[1]  the queue name
-- ARGV[2]  Unix seconds (float) to run at, or '' to queue the jobs now
-- ARGV[3]  the unique window in seconds, or '' when the jobs are not unique
-- ARGV[4]  now as RQ writes times (ISO 8601 with microseconds and a Z): enqueued_at
-- ARGV[5]  F, how many field/value pairs each job brings
-- ARGV[6..] per job: its id, its unique lock key ('' when not unique), then F pairs of
--          job-hash field and value (created_at, data, description, origin, timeout, ...)
--
-- Guarantees: a job's hash, its lock and its queue entry appear in one atomic step, so no
-- worker sees a queued id without its hash and no lock is left without its job. A unique
-- job whose twin holds the lock (waiting, scheduled or running) is not written: its
-- twin's id is returned in its place. Status, enqueued_at and simbi_unique are written
-- here, so every client sets them the same way.
-- Returns the job ids, in order (a twin's id where a twin holds the lock).

local queue, run_at, window, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local pairs_per_job = tonumber(ARGV[5])
local status = (run_at == '') and 'queued' or 'scheduled'
local WAKEUP, WAKEUP_TOKENS_MAX = 'simbi:wakeup', 256
local ids, fresh = {}, {}

local i = 6
while i <= #ARGV do
  local job_id, lock = ARGV[i], ARGV[i + 1]
  local first, last = i + 2, i + 1 + 2 * pairs_per_job
  i = last + 1

  local holder = nil
  if lock ~= '' and not redis.call('SET', lock, job_id, 'NX', 'EX', window) then
    holder = redis.call('GET', lock)
  end
  if holder then
    ids[#ids + 1] = holder
  else
    local key = 'rq:job:' .. job_id
    redis.call('HSET', key, 'status', status, unpack(ARGV, first, last))
    if status == 'queued' then redis.call('HSET', key, 'enqueued_at', now) end
    if lock ~= '' then redis.call('HSET', key, 'simbi_unique', lock) end
    ids[#ids + 1] = job_id
    fresh[#fresh + 1] = job_id
  end
end

if #fresh > 0 then
  redis.call('SADD', 'rq:queues', 'rq:queue:' .. queue)
  if status == 'queued' then
    redis.call('RPUSH', 'rq:queue:' .. queue, unpack(fresh))
    -- One wake-up token per job lets exactly one idle worker process take it.
    local tokens = math.min(#fresh, WAKEUP_TOKENS_MAX)
    redis.call('LPUSH', WAKEUP, unpack(fresh, 1, tokens))
    redis.call('LTRIM', WAKEUP, 0, WAKEUP_TOKENS_MAX - 1)
  else
    for _, job_id in ipairs(fresh) do
      redis.call('ZADD', 'rq:scheduled:' .. queue, run_at, job_id)
    end
  end
end
return ids
