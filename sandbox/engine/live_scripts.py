"""The Lua scripts behind an experiment's record (sandbox.engine.live): each is one round trip, atomic."""

# The one definition of "finished": every admitted job is terminal, nothing runs, and every duplicate
# delivery has been seen through. Both scripts below and every read use it.
IS_FINISHED = """
local function is_finished(counters_key, running_key)
  local c = redis.call('HMGET', counters_key, 'enqueued', 'succeeded', 'dead_lettered', 'stopped',
    'duplicates_delivered', 'late_outcomes')
  if not c[1] then return false end
  local n = {}
  for i = 1, 6 do n[i] = tonumber(c[i]) or 0 end
  -- a workflow run (sandbox.workflows) also waits for its relay and consumer: wf_open is 1 until they settle
  local open = tonumber(redis.call('HGET', counters_key, 'wf_open') or '0')
  return n[1] == n[2] + n[3] + n[4] and n[5] <= n[6] and redis.call('HLEN', running_key) == 0 and open == 0
end
"""
FINISHED = IS_FINISHED + "return is_finished(KEYS[1], KEYS[2]) and 1 or 0"

# Set the job's terminal state once; only the first outcome of a message counts.
SET_TERMINAL = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  return 1
end
return 0
"""

# The hot path of every job is two scripts: one round trip when an attempt starts, one when it ends.
BEGIN_ATTEMPT = """
local params = redis.call('GET', KEYS[1])
if not params then return false end
-- A job of an earlier run under the same id (its database was reset, Redis was not) is not this run's.
if ARGV[10] ~= '' and redis.call('HGET', KEYS[10], 'run') ~= ARGV[10] then return false end
local attempt = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('HINCRBY', KEYS[3], 'attempts', 1)
if attempt > 1 then redis.call('HINCRBY', KEYS[3], 'redeliveries', 1) end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('SET', KEYS[6], ARGV[3], 'EX', ARGV[4])
redis.call('HINCRBY', KEYS[7], ARGV[5], 1)
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('EXPIRE', KEYS[4], ARGV[6])
redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[9], '*',
  't', ARGV[7], 'kind', 'started', 'job', ARGV[1], 'attempt', attempt, 'worker', ARGV[8], 'pid', ARGV[3])
return {params, attempt, redis.call('EXISTS', KEYS[9]), redis.call('EXISTS', KEYS[11]),
  redis.call('HGET', KEYS[10], 't0') or '0'}
"""

# Apply a message's order key and sequence: a sequence lower than one already applied for its key is
# an order violation (event 2 of customer 7 charged before event 1).
APPLY_IN_ORDER = """
local last = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
local seq = tonumber(ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if seq < last then
  redis.call('HINCRBY', KEYS[2], 'order_violations', 1)
  return 1
end
redis.call('HSET', KEYS[1], ARGV[1], seq)
return 0
"""

# Ends an attempt that produced an outcome (succeeded or stopped); the first outcome of a message counts.
FINISH_ATTEMPT = (
    IS_FINISHED
    + """
local job, state, now, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[8]
local first = redis.call('HSETNX', KEYS[1], job, state) == 1
if first then
  redis.call('HINCRBY', KEYS[2], state, 1)
  local enq = redis.call('HGET', KEYS[7], job)
  if enq then
    redis.call('ZADD', KEYS[8], math.floor((tonumber(now) - tonumber(enq)) * 1000 + 0.5), job)
    redis.call('EXPIRE', KEYS[8], ttl)
  end
else
  redis.call('HINCRBY', KEYS[2], 'late_outcomes', 1)
end
local running = redis.call('HGET', KEYS[3], job)
local mark = cjson.decode(ARGV[6])
if running then mark['s'] = cjson.decode(running)['since'] end
redis.call('HDEL', KEYS[3], job)
redis.call('DEL', KEYS[4])
redis.call('HINCRBY', KEYS[5], ARGV[4] .. ':end', 1)
if ARGV[5] ~= '' then redis.call('HINCRBY', KEYS[5], ARGV[4] .. ':' .. ARGV[5], 1) end
redis.call('RPUSH', KEYS[6], cjson.encode(mark))
redis.call('EXPIRE', KEYS[6], ttl)
if ARGV[7] ~= '' then redis.call('HINCRBY', KEYS[2], ARGV[7], 1) end
local event = {'t', now, 'kind', ARGV[9], 'job', job}
for i = 11, #ARGV do event[#event + 1] = ARGV[i] end
redis.call('XADD', KEYS[9], 'MAXLEN', '~', ARGV[10], '*', unpack(event))
return {first and 1 or 0, is_finished(KEYS[2], KEYS[3]) and 1 or 0}
"""
)
