-- release_unique.lua: give up a unique lock, but only the holder may.
--
-- KEYS[1]  the lock (simbi:unique:<worker>:<digest>)
-- ARGV[1]  the job id that believes it holds it
--
-- Guarantee: a job never releases a lock that expired and was taken by a newer twin.
-- Returns 1 when released, 0 otherwise.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
