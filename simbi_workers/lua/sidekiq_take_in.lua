-- sidekiq_take_in.lua: turn payloads a stock Sidekiq client pushed into our jobs.
--
-- KEYS[1]  the Sidekiq key the payloads were read from: a queue list (queue:<name>), or
--          the schedule or retry sorted set
-- KEYS[2]  the wake-up list idle worker processes block on
-- ARGV[1]  'list' or 'zset': the type of KEYS[1]
-- ARGV[2]  the failure TTL, seconds: how long the hash of a job that goes dead is kept
-- ARGV[3..] one item per payload, 7 + 2n slots each:
--          the payload (the exact member of KEYS[1]),
--          its Sidekiq jid ('' when it cannot serve as a job id),
--          a fresh job id, used when the jid is empty or already names a job,
--          the action: 'queue', 'schedule' (to run later) or 'dead' (the dead set),
--          our queue name,
--          the score: when to run ('schedule'), when it leaves the dead set ('dead'),
--          n, then n field/value pairs of the job hash (computed by sidekiq.py)
--
-- Guarantee: a payload leaves KEYS[1] and becomes our job (hash written, id in our queue,
-- scheduled registry or dead set) in one atomic step, and only when it is still in
-- KEYS[1]. A crash never loses one, and two supervisors reading the same payload never
-- make two jobs of it: the second finds it gone. A job id is never reused: a jid that
-- already names a job hash gets the fresh id instead.
-- Returns, per item in order, the job id it became, or '' when the payload was gone.

local source, wakeup = KEYS[1], KEYS[2]
local from_list = ARGV[1] == 'list'
local failure_ttl = tonumber(ARGV[2])
local taken = {}
local woken = false

local i = 3
while i <= #ARGV do
  local payload, jid, fresh_id = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local action, queue, score = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local first_field = i + 7
  local last_field = i + 6 + 2 * tonumber(ARGV[i + 6])
  i = last_field + 1

  local removed
  if from_list then
    -- From the tail, where the oldest payloads are: LREM stops at the first match.
    removed = redis.call('LREM', source, -1, payload)
  else
    removed = redis.call('ZREM', source, payload)
  end

  if removed == 0 then
    taken[#taken + 1] = ''
  else
    local job_id = jid
    if job_id == '' or redis.call('EXISTS', 'rq:job:' .. job_id) == 1 then job_id = fresh_id end
    local job_key = 'rq:job:' .. job_id
    redis.call('HSET', job_key, unpack(ARGV, first_field, last_field))
    redis.call('SADD', 'rq:queues', 'rq:queue:' .. queue)
    if action == 'queue' then
      redis.call('RPUSH', 'rq:queue:' .. queue, job_id)
      redis.call('LPUSH', wakeup, job_id)
      woken = true
    elseif action == 'schedule' then
      redis.call('ZADD', 'rq:scheduled:' .. queue, score, job_id)
    else
      redis.call('ZADD', 'rq:failed:' .. queue, score, job_id)
      redis.call('EXPIRE', job_key, failure_ttl)
    end
    taken[#taken + 1] = job_id
  end
end
if woken then redis.call('LTRIM', wakeup, 0, 255) end
return taken
