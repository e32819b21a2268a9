-- delete_dead.lua: remove jobs from the dead set (RQ's failed registries) for good.
--
-- ARGV[1], ARGV[2], ...  pairs: queue name, job id (the job's entry in rq:failed:<queue>)
--
-- Guarantee: a job's hash is deleted only in the same atomic step that takes its entry
-- out of the dead set, so a job that someone retried a moment earlier (now queued or
-- running) is never deleted from under its worker.
-- Its RQ results stream (rq:results:<id>, where RQ 2 keeps tracebacks) goes with it.
-- Returns one word per pair: 'deleted', or 'missing' (not in that registry).

local replies = {}
for i = 1, #ARGV, 2 do
  local queue, job_id = ARGV[i], ARGV[i + 1]
  if redis.call('ZREM', 'rq:failed:' .. queue, job_id) == 1 then
    redis.call('DEL', 'rq:job:' .. job_id, 'rq:results:' .. job_id)
    replies[#replies + 1] = 'deleted'
  else
    replies[#replies + 1] = 'missing'
  end
end
return replies
