"""Lua scripts for every task state change, so that each one is atomic on the Redis server.

Each script works on a batch: one round trip stores or moves many tasks. Keys are passed in KEYS
(built by :class:`~services.common.store.keys.Keys`); values in ARGV. Status only moves forward
(QUEUED -> RUNNING -> COMPLETED | FAILED), except that a lost attempt goes back to QUEUED, and
an outcome is stored only for the task's current attempt while it is not terminal.

A write whose reply was lost (a timeout while Redis hung) is of unknown outcome and is retried
with the same attempt ids, so every script is idempotent for an attempt: a repeated start, finish
or requeue of the same attempt reports what the first one did. A task's ``settled`` field records
how its last attempt ended (``<attempt_id>:F`` finished, ``:R`` requeued, ``:X`` failed for having
used all attempts; ``<token>:Q`` failed while QUEUED, before any attempt, by the write that
carried that token) so that a repeat can tell its own earlier write from another attempt's.
"""

from __future__ import annotations

# Every script that makes a task terminal takes it out of its tenant's open set (the key its
# ``counted`` field names, when CREATE_TASKS put it in one).
_UNCOUNT = """
local function uncount(key, tid)
  local okey = redis.call('HGET', key, 'counted')
  if okey then
    redis.call('ZREM', okey, tid)
  end
end
"""

# ... and counts the end on its function (``completed`` or ``failed``), once per task: each
# script reaches ``ended`` only on the write that makes the task terminal, never on a repeat.
# KEYS[1] of each is the queued key, whose name gives the prefix. A deleted function (it had
# no open task then) is not brought back by a count.
_ENDED = (
    _UNCOUNT
    + """
local function ended(key, tid)
  uncount(key, tid)
  local f = redis.call('HMGET', key, 'function_id', 'status')
  if f[1] then
    local fkey = string.sub(KEYS[1], 1, #KEYS[1] - #'queued') .. 'function:' .. f[1]
    if redis.call('EXISTS', fkey) == 1 then
      redis.call('HINCRBY', fkey, f[2] == 'COMPLETED' and 'completed' or 'failed', 1)
    end
  end
end
"""
)

# Every script that makes a task terminal replies, per task, with the state as written, so that
# the dispatcher can announce it without reading Redis again:
# {code, function_id, status, cause, message, traceback, attempts, worker_id, created, started,
#  finished, result or false, output_bytes, requeued}. The result is sent back only for a
# repeat (code 2), whose stored result may be another send's; for a write applied now (code 1)
# the caller has it.
_STATE = """
local function state(key, code)
  local f = redis.call('HMGET', key, 'function_id', 'status', 'cause', 'message', 'traceback',
    'attempts', 'worker_id', 'created', 'started', 'finished', 'output_bytes', 'requeued')
  local result = false
  if code == 2 then
    result = redis.call('HGET', key, 'result') or ''
  end
  return {code, f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], result, f[11],
    f[12]}
end
"""

# KEYS: queued, then per task (function key, task key, request key or task key again, the open
#       set of its tenant).
# ARGV: now, counting "1"|"0" (keep the open sets), the limit of open tasks per tenant (0: none;
#       only while counting), whole "1"|"0" (the tasks are one request, refused whole), the
#       tenant of a function stored without one, then per task (task_id, function_id, payload,
#       timeout or "", has_request "1"/"0", placement, runtime: serialized faas.v1 messages or ""
#       for none, tenant).
# Returns per task {task_id, timeout, created "1"|"0"}; {"", "", "0"} when the function is missing
# or is another tenant's; {earlier task_id, "", "2"} when the request_id was used for another
# function; {"", "", "3"} when the task (or, whole, any task of the request) would take its
# tenant over the limit of open tasks: nothing of that request is stored. A request key holds
# "task_id function_id". The limit is checked here, in the script that adds to the open set, so
# that no two gateways can both pass it.
CREATE_TASKS = """
local queued = KEYS[1]
local now, counting, limit = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3])
local whole, default_tenant = ARGV[4] == '1', ARGV[5]
local prefix = string.sub(queued, 1, #queued - #'queued')  -- of the listing indexes
local n = (#KEYS - 1) / 4
local out = {}
local plans = {}
-- What the stored tasks add to the listing indexes and their functions' counts, written once
-- at the end (a batch's tasks share their keys).
local added, submitted = {}, {}

local function index(key, tid)
  local members = added[key]
  if not members then
    members = {}
    added[key] = members
  end
  members[#members + 1] = now
  members[#members + 1] = tid
end

-- What storing task i would do: 'missing', 'new', or the earlier request's value.
local function plan(i)
  local fkey, rkey = KEYS[2 + 4 * i], KEYS[4 + 4 * i]
  local base = 5 + 8 * i
  local fid, hasreq, tenant = ARGV[base + 2], ARGV[base + 5], ARGV[base + 8]
  local f = redis.call('HMGET', fkey, 'created', 'tenant')
  if not f[1] or (f[2] or default_tenant) ~= tenant then
    return 'missing'
  end
  if hasreq == '1' then
    local prev = redis.call('GET', rkey)
    if prev then
      return prev
    end
  end
  return 'new'
end

-- Whether the new tasks among first..last take an open set over the limit.
local function over(first, last)
  if not counting or limit <= 0 then
    return false
  end
  local adding = {}
  for i = first, last do
    if plans[i] == 'new' then
      local okey = KEYS[5 + 4 * i]
      adding[okey] = (adding[okey] or 0) + 1
    end
  end
  for okey, count in pairs(adding) do
    if redis.call('ZCARD', okey) + count > limit then
      return true
    end
  end
  return false
end

local function store(i)
  local fkey, tkey, rkey, okey = KEYS[2 + 4 * i], KEYS[3 + 4 * i], KEYS[4 + 4 * i], KEYS[5 + 4 * i]
  local base = 5 + 8 * i
  local tid, fid, payload = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local timeout, hasreq = ARGV[base + 4], ARGV[base + 5]
  local placement, runtime, tenant = ARGV[base + 6], ARGV[base + 7], ARGV[base + 8]
  local p = plans[i]
  if p == 'missing' then
    out[i + 1] = {'', '', '0'}
  elseif p ~= 'new' then
    local prev_tid, prev_fid = string.match(p, '^(%S+) (%S+)$')
    out[i + 1] = {prev_tid, '', prev_fid == fid and '0' or '2'}
  else
    if hasreq == '1' then
      redis.call('SET', rkey, tid .. ' ' .. fid, 'EX', 86400)
    end
    if timeout == '' then
      timeout = redis.call('HGET', fkey, 'timeout') or ''
    end
    redis.call('HSET', tkey, 'function_id', fid, 'status', 'QUEUED', 'payload', payload,
      'timeout', timeout, 'attempts', 0, 'created', now, 'tenant', tenant)
    if placement ~= '' then
      redis.call('HSET', tkey, 'placement', placement)
    end
    if runtime ~= '' then
      redis.call('HSET', tkey, 'runtime', runtime)
    end
    if counting then
      redis.call('HSET', tkey, 'counted', okey)
      redis.call('ZADD', okey, now, tid)
    end
    redis.call('ZADD', queued, now, tid)
    submitted[fkey] = (submitted[fkey] or 0) + 1
    index(prefix .. 'tasks:' .. tenant, tid)
    index(prefix .. 'function-tasks:' .. fid, tid)
    out[i + 1] = {tid, timeout, '1'}
  end
end

local function refuse(first, last)
  for i = first, last do
    out[i + 1] = plans[i] == 'missing' and {'', '', '0'} or {'', '', '3'}
  end
end

if whole then
  for i = 0, n - 1 do
    plans[i] = plan(i)
  end
  if over(0, n - 1) then
    refuse(0, n - 1)
  else
    for i = 0, n - 1 do
      store(i)
    end
  end
else
  for i = 0, n - 1 do  -- one by one: a task sees the request keys of those before it
    plans[i] = plan(i)
    if over(i, i) then
      refuse(i, i)
    else
      store(i)
    end
  end
end
for fkey, count in pairs(submitted) do
  redis.call('HINCRBY', fkey, 'submitted', count)
end
for key, members in pairs(added) do
  for first = 1, #members, 1000 do
    redis.call('ZADD', key, unpack(members, first, math.min(first + 999, #members)))
  end
end
return out
"""

# KEYS: queued, running, then one task key per task.
# ARGV: now, then per task (task_id, attempt_id, worker_id).
# Returns per task 1 when the attempt started (now, or by an earlier send of the same attempt),
# 0 when the task was not QUEUED.
START_ATTEMPTS = """
local queued, running = KEYS[1], KEYS[2]
local now = ARGV[1]
local out = {}
for i = 3, #KEYS do
  local base = 2 + 3 * (i - 3)
  local tid, aid, wid = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local fields = redis.call('HMGET', KEYS[i], 'status', 'attempt_id')
  if fields[2] == aid and fields[1] == 'RUNNING' then
    out[#out + 1] = 1
  elseif fields[1] == 'QUEUED' then
    redis.call('HSET', KEYS[i], 'status', 'RUNNING', 'attempt_id', aid, 'worker_id', wid,
      'started', now)
    redis.call('HDEL', KEYS[i], 'pending')
    redis.call('HINCRBY', KEYS[i], 'attempts', 1)
    redis.call('ZREM', queued, tid)
    redis.call('ZADD', running, now, tid)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""

# KEYS: queued, running, then one task key per task.
# ARGV: now, result TTL in ms (0: keep), then per task
#       (task_id, attempt_id, status, result, cause, message, traceback, unstarted "1"|"0",
#       worker_id, output: what the function printed, already bounded; "" for none).
# An outcome is stored for the task's current RUNNING attempt, or, when the dispatcher says the
# attempt was never recorded as started (a prefetched attempt whose start did not come or was
# not written yet: "unstarted"), for a task still QUEUED, which then counts that attempt.
# Returns per task the state as stored (code 1 now, 2 by an earlier send for the same attempt),
# {0} when the task was terminal or the attempt is not current.
FINISH_ATTEMPTS = (
    _STATE
    + _ENDED
    + """
local queued, running = KEYS[1], KEYS[2]
local now, ttl = ARGV[1], tonumber(ARGV[2])
local out = {}
for i = 3, #KEYS do
  local base = 3 + 10 * (i - 3)
  local tid, aid = ARGV[base], ARGV[base + 1]
  local fields = redis.call('HMGET', KEYS[i], 'status', 'attempt_id', 'settled')
  local unstarted = ARGV[base + 7] == '1' and fields[1] == 'QUEUED'
  if fields[3] == aid .. ':F' then
    out[#out + 1] = state(KEYS[i], 2)
  elseif (fields[1] == 'RUNNING' and fields[2] == aid) or unstarted then
    if unstarted then
      redis.call('HSET', KEYS[i], 'attempt_id', aid, 'worker_id', ARGV[base + 8], 'started', now)
      redis.call('HINCRBY', KEYS[i], 'attempts', 1)
      redis.call('HDEL', KEYS[i], 'pending')
    end
    redis.call('HSET', KEYS[i], 'status', ARGV[base + 2], 'result', ARGV[base + 3],
      'cause', ARGV[base + 4], 'message', ARGV[base + 5], 'traceback', ARGV[base + 6],
      'finished', now, 'settled', aid .. ':F')
    redis.call('HDEL', KEYS[i], 'payload')
    local output = ARGV[base + 9]
    if output ~= '' then
      redis.call('HSET', KEYS[i], 'output', output, 'output_bytes', #output)
    else
      redis.call('HDEL', KEYS[i], 'output', 'output_bytes')
    end
    if ttl > 0 then
      redis.call('PEXPIRE', KEYS[i], ttl)
    end
    redis.call('ZREM', running, tid)
    redis.call('ZREM', queued, tid)
    ended(KEYS[i], tid)
    out[#out + 1] = state(KEYS[i], 1)
  else
    out[#out + 1] = {0}
  end
end
return out
"""
)

# KEYS: queued, running, then one task key per task.
# ARGV: now, max_attempts, result TTL in ms (0: keep), then the result, message and cause of a
#       final failure,
#       then per task (task_id, attempt_id or "" for any RUNNING attempt).
# Returns per task {1} when requeued, {2, state} when FAILED for having used all attempts (the
# state as stored, result left out: it is the final result given), {0} otherwise; a repeat for
# the same attempt returns what the first one did.
REQUEUE_ATTEMPTS = (
    _STATE
    + _ENDED
    + """
local queued, running = KEYS[1], KEYS[2]
local now, max_attempts, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local result, message, cause = ARGV[4], ARGV[5], ARGV[6]
local out = {}
for i = 3, #KEYS do
  local base = 7 + 2 * (i - 3)
  local tid, aid = ARGV[base], ARGV[base + 1]
  local fields = redis.call('HMGET', KEYS[i], 'status', 'attempt_id', 'attempts', 'settled')
  if aid ~= '' and fields[4] == aid .. ':R' and fields[1] == 'QUEUED' then
    out[#out + 1] = {1}
  elseif aid ~= '' and fields[4] == aid .. ':X' then
    out[#out + 1] = {2, state(KEYS[i], 1)}
  elseif fields[1] == 'RUNNING' and (aid == '' or fields[2] == aid) then
    redis.call('ZREM', running, tid)
    if tonumber(fields[3] or '0') >= max_attempts then
      redis.call('HSET', KEYS[i], 'status', 'FAILED', 'result', result, 'cause', cause,
        'message', message, 'traceback', '', 'finished', now,
        'settled', (fields[2] or '') .. ':X')
      redis.call('HDEL', KEYS[i], 'payload')
      if ttl > 0 then
        redis.call('PEXPIRE', KEYS[i], ttl)
      end
      ended(KEYS[i], tid)
      out[#out + 1] = {2, state(KEYS[i], 1)}
    else
      redis.call('HSET', KEYS[i], 'status', 'QUEUED', 'settled', (fields[2] or '') .. ':R',
        'requeued', now)
      redis.call('ZADD', queued, now, tid)
      out[#out + 1] = {1}
    end
  else
    out[#out + 1] = {0}
  end
end
return out
"""
)

# KEYS: queued, then one task key per task.
# ARGV: now, result TTL in ms (0: keep), then per task (task_id, token, result, cause, message).
# Fails QUEUED tasks that never started (no attempt: e.g. no worker could take them).
# Returns per task the state as stored when FAILED (now, or by an earlier send with the same
# token; its result left out: it is the one given), {0} when the task was not QUEUED.
FAIL_QUEUED = (
    _STATE
    + _ENDED
    + """
local queued = KEYS[1]
local now, ttl = ARGV[1], tonumber(ARGV[2])
local out = {}
for i = 2, #KEYS do
  local base = 3 + 5 * (i - 2)
  local tid, token = ARGV[base], ARGV[base + 1]
  local fields = redis.call('HMGET', KEYS[i], 'status', 'settled')
  if fields[2] == token .. ':Q' then
    out[#out + 1] = state(KEYS[i], 1)
  elseif fields[1] == 'QUEUED' then
    redis.call('HSET', KEYS[i], 'status', 'FAILED', 'result', ARGV[base + 2],
      'cause', ARGV[base + 3], 'message', ARGV[base + 4], 'traceback', '', 'finished', now,
      'settled', token .. ':Q')
    redis.call('HDEL', KEYS[i], 'payload', 'pending')
    if ttl > 0 then
      redis.call('PEXPIRE', KEYS[i], ttl)
    end
    redis.call('ZREM', queued, tid)
    ended(KEYS[i], tid)
    out[#out + 1] = state(KEYS[i], 1)
  else
    out[#out + 1] = {0}
  end
end
return out
"""
)

# KEYS: one task key per task. ARGV: per task its pending reason ("" clears it).
# Sets or clears why a task waits, only while it is QUEUED. Returns the number changed.
SET_PENDING = """
local n = 0
for i = 1, #KEYS do
  if redis.call('HGET', KEYS[i], 'status') == 'QUEUED' then
    if ARGV[i] == '' then
      redis.call('HDEL', KEYS[i], 'pending')
    else
      redis.call('HSET', KEYS[i], 'pending', ARGV[i])
    end
    n = n + 1
  end
end
return n
"""

# KEYS: the function key, its tasks' index (function-tasks:{id}).
# ARGV: the caller's tenant ("" for any), the tenant of a function stored without one, the key
#       prefix.
# Deletes a function with no QUEUED or RUNNING task (its counts say how many it has: every task
# stored is counted submitted, every one ended completed or failed, in the same scripts) and takes
# it out of its tenant's functions index; its tasks' hashes stay. Returns -1 when there is no such
# function (of that tenant), 0 when deleted, else the number of its open tasks (nothing deleted).
DELETE_FUNCTION = """
local fkey, index = KEYS[1], KEYS[2]
local f = redis.call('HMGET', fkey, 'created', 'tenant', 'submitted', 'completed', 'failed')
local tenant = f[2] or ARGV[2]
if not f[1] or (ARGV[1] ~= '' and tenant ~= ARGV[1]) then
  return -1
end
local open = tonumber(f[3] or '0') - tonumber(f[4] or '0') - tonumber(f[5] or '0')
if open > 0 then
  return open
end
local fid = string.sub(fkey, #ARGV[3] + #'function:' + 1)
-- Emptied rather than DEL'd: the gateway's Redis user may not DEL (see redis_access).
redis.call('HDEL', fkey, unpack(redis.call('HKEYS', fkey)))
redis.call('ZREMRANGEBYRANK', index, 0, -1)
redis.call('ZREM', ARGV[3] .. 'functions:' .. tenant, fid)
return 0
"""
