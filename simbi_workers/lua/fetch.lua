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
-- ARGV[6]  JSON object: worker name -> concurrency limit
-- ARGV[7]  seconds a job over its worker's limit waits before it is tried again
-- ARGV[8..] queue names, highest priority first
--
-- Guarantees:
-- * the job id moves from its queue into the processing list in one atomic step, so at
--   every moment it is in a Redis list that someone will look at; it never lives only in
--   a process's memory;
-- * a worker never runs more jobs at once than its limit, across all processes and hosts:
--   the running ones hold slots in simbi:slots:<worker>, which expire with the job's
--   timeout, so a slot held by a dead process comes back by itself;
-- * a job over its limit does not hold this process: it goes to the scheduled registry
--   for ARGV[7] seconds (not counted as an attempt) and the next job is tried;
-- * a job whose hash has vanished (expired, deleted) is dropped and the next is tried;
-- * a job already in the processing list is handed over again instead of a new one. A
--   process runs one job at a time and acknowledges it before it fetches again, so such a
--   job was taken by an earlier call whose reply never arrived (Redis stopped or was
--   killed after it had written the move to its AOF). Without this it would wait there,
--   owned by a live process, forever.
-- Returns {queue, job_id, field1, value1, ...} or nil when nothing can run now.

local processing = KEYS[1]
local now = tonumber(ARGV[1])
local grace = tonumber(ARGV[5])
local limits = cjson.decode(ARGV[6])
local wait = tonumber(ARGV[7])
local deferred = 0
local MAX_DEFERRED = 50  -- bounds one call's work when a queue is full of limited jobs

-- Marks the job started (its slot already taken) and returns it with its hash.
local function start(queue, job_id, job_key, timeout)
  redis.call('HSET', job_key, 'status', 'started', 'started_at', ARGV[2],
             'last_heartbeat', ARGV[2], 'worker_name', ARGV[3], 'simbi_queue', queue)
  redis.call('ZADD', 'rq:wip:' .. queue, now + timeout + grace, job_id .. ARGV[4])
  redis.call('LPOP', KEYS[2])
  local fields = redis.call('HGETALL', job_key)
  local reply = {queue, job_id}
  for j = 1, #fields do reply[#reply + 1] = fields[j] end
  return reply
end

local function timeout_of(job_key)
  return tonumber(redis.call('HGET', job_key, 'timeout')) or 60
end

local unanswered = redis.call('LINDEX', processing, 0)
if unanswered then
  local job_key = 'rq:job:' .. unanswered
  local queue = redis.call('HGET', job_key, 'simbi_queue')
  if queue then
    return start(queue, unanswered, job_key, timeout_of(job_key))
  end
  redis.call('LREM', processing, -1, unanswered)  -- its hash vanished meanwhile
end

for i = 8, #ARGV do
  local queue = ARGV[i]
  while deferred < MAX_DEFERRED do
    local job_id = redis.call('LMOVE', 'rq:queue:' .. queue, processing, 'LEFT', 'RIGHT')
    if not job_id then break end

    local job_key = 'rq:job:' .. job_id
    if redis.call('EXISTS', job_key) == 0 then
      redis.call('LREM', processing, -1, job_id)
    else
      local timeout = timeout_of(job_key)
      local worker = redis.call('HGET', job_key, 'simbi_worker')
      local limit = worker and limits[worker]
      local slots = worker and ('simbi:slots:' .. worker)
      local full = false
      if limit then
        redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
        full = redis.call('ZCARD', slots) >= limit
      end

      if full then
        redis.call('LREM', processing, -1, job_id)
        redis.call('HSET', job_key, 'status', 'scheduled')
        redis.call('ZADD', 'rq:scheduled:' .. queue, now + wait, job_id)
        deferred = deferred + 1
      else
        if limit then redis.call('ZADD', slots, now + timeout + grace, job_id .. ARGV[4]) end
        return start(queue, job_id, job_key, timeout)
      end
    end
  end
end
return nil
