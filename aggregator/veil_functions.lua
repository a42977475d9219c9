#!lua name=veil
-- veil_functions.lua - the aggregator's Redis Functions (library "veil"),
-- compiled into veil-aggregator (Makefile: build/gen/veil_functions.h) and
-- loaded with FUNCTION LOAD REPLACE at every (re)connect
-- (docs/AGGREGATOR.md "Ownership" and "The commit").
--
-- One shard is written by one aggregator process at a time: the one holding
-- its lease. Every function that writes checks the shard's fencing epoch
-- first and writes nothing when it is not current, so a paused or
-- partitioned old owner can never write after another took over.
--
-- These functions never read event content: they get counts, keys, members
-- and stream ids planned by the aggregator, and never log.
--
-- Keys of one shard s: veil:{s}:epoch (string, only grows, no expiry),
-- veil:{s}:lease (string "<owner> <epoch>", PX lease_ms), veil:{s}:events
-- (stream), veil:{s}:sessions (hash, the open-visit checkpoint) and
-- veil:{s}:sites (set). All carry the tag {s}: one cluster slot.

-- acquire: KEYS epoch, lease; ARGV owner, lease_ms.
-- The new epoch when the lease was free (then held by owner), else 0.
local function acquire(keys, args)
  if redis.call('EXISTS', keys[2]) == 1 then return 0 end
  local epoch = redis.call('INCR', keys[1])
  redis.call('SET', keys[2], args[1] .. ' ' .. epoch, 'PX', args[2])
  return epoch
end

-- renew: KEYS epoch, lease; ARGV owner, epoch, lease_ms.
-- 1 when epoch is still current (the lease is set again, even if it had
-- expired: nobody took over, or the epoch would have grown), else 0.
local function renew(keys, args)
  if redis.call('GET', keys[1]) ~= args[2] then return 0 end
  redis.call('SET', keys[2], args[1] .. ' ' .. args[2], 'PX', args[3])
  return 1
end

-- release: KEYS epoch, lease; ARGV epoch. Frees the lease when epoch is
-- current, so another process may take the shard at once. 1 or 0.
local function release(keys, args)
  if redis.call('GET', keys[1]) ~= args[1] then return 0 end
  redis.call('DEL', keys[2])
  return 1
end

-- commit: one batch of one shard, all or nothing.
-- KEYS: 1 epoch, 2 lease, 3 stream, 4 sessions, 5 sites.
-- ARGV, read in order by `next`:
--   owner, epoch, lease_ms, trim_minid ("" = nothing to trim),
--   sessions_ttl_s,
--   n counters:  key expire_at nfields (field delta)*nfields   HINCRBY
--   n hlls:      key expire_at nmembers member*nmembers        PFADD
--                (expire_at 0: the key's expiry is already set)
--   n closed:    field                                         HDEL checkpoint
--   n sessions:  field value                                   HSET checkpoint
--                (closed first: a visit closed and restarted by one batch
--                ends up stored)
--   n sites:     site                                          SADD
--   n forwards:  stream packed_event                           XADD (legacy entries
--                                                              of another shard)
-- then XTRIM MINID trim_minid: the batch's entries (and any before) leave
-- the stream. Returns 1, or 0 (nothing written) when epoch is stale.
-- On a Redis Cluster, while the shard's slot migrates, a command on a key
-- of the slot that this node does not hold stops the function with an
-- error ("non local key"), and the writes made before it stay: a half
-- commit, counted again when the batch is retried. So every key the commit
-- writes is looked at first, before any write: a missing key stops it
-- there, with nothing written (the owner retries after the migration), in
-- one EXISTS per 500 keys (per key it cost 2.3 calls per event).
local function touch_all(args)
  local at = 5
  local function next()
    at = at + 1
    return args[at]
  end
  -- one EXISTS per 500 keys: a multi-key command over keys of one slot
  -- fails as a whole when any of them has moved, like one call per key
  local batch, n = {}, 0
  local function add(key)
    n = n + 1
    batch[n] = key
    if n == 500 then
      redis.call('EXISTS', unpack(batch, 1, n))
      n = 0
    end
  end
  for _ = 1, tonumber(next()) do
    add(next())
    next()
    at = at + 2 * tonumber(next())
  end
  for _ = 1, tonumber(next()) do
    add(next())
    next()
    at = at + tonumber(next())
  end
  if n > 0 then redis.call('EXISTS', unpack(batch, 1, n)) end
end

local function commit(keys, args)
  if redis.call('GET', keys[1]) ~= args[2] then return 0 end
  touch_all(args)
  local at = 5
  local function next()
    at = at + 1
    return args[at]
  end
  redis.call('SET', keys[2], args[1] .. ' ' .. args[2], 'PX', args[3])

  for _ = 1, tonumber(next()) do
    local key, expire_at, n = next(), next(), tonumber(next())
    for j = at + 1, at + 2 * n, 2 do redis.call('HINCRBY', key, args[j], args[j + 1]) end
    at = at + 2 * n
    if expire_at ~= '0' then redis.call('EXPIREAT', key, expire_at) end
  end
  for _ = 1, tonumber(next()) do
    local key, expire_at, n = next(), next(), tonumber(next())
    local first = at + 1
    at = at + n
    for j = first, at, 1000 do
      redis.call('PFADD', key, unpack(args, j, math.min(j + 999, at)))
    end
    if expire_at ~= '0' then redis.call('EXPIREAT', key, expire_at) end
  end
  local ndel = tonumber(next())
  if ndel > 0 then
    for j = at + 1, at + ndel, 1000 do
      redis.call('HDEL', keys[4], unpack(args, j, math.min(j + 999, at + ndel)))
    end
    at = at + ndel
  end
  local nset = tonumber(next())
  if nset > 0 then
    for j = at + 1, at + 2 * nset, 1000 do
      redis.call('HSET', keys[4], unpack(args, j, math.min(j + 999, at + 2 * nset)))
    end
    at = at + 2 * nset
  end
  if nset > 0 then redis.call('EXPIRE', keys[4], args[5]) end
  for _ = 1, tonumber(next()) do redis.call('SADD', keys[5], next()) end
  for _ = 1, tonumber(next()) do
    redis.call('XADD', next(), '*', 'e', next())
  end
  if args[4] ~= '' then redis.call('XTRIM', keys[3], 'MINID', args[4]) end
  return 1
end

-- Every function may run at maxmemory: a commit trims the stream (it
-- frees the raw events it counted, more than its counters add), and
-- leases must keep working for a commit to be possible at all.
redis.register_function{function_name = 'veil_acquire', callback = acquire,
                        flags = {'allow-oom'}}
redis.register_function{function_name = 'veil_renew', callback = renew,
                        flags = {'allow-oom'}}
redis.register_function{function_name = 'veil_release', callback = release,
                        flags = {'allow-oom'}}
redis.register_function{function_name = 'veil_commit', callback = commit,
                        flags = {'allow-oom', 'allow-cross-slot-keys'}}
