-- chat.lua - chat.md (the T3 Chat Clone's WebSocket API) on emitd's
-- namespace "/chat". See ../README.md and emitd.conf(5).
--
-- Every event answers its callback with { success, message, ... } as the
-- seed shows. What every worker must see - message receipts, typing state,
-- participants, last activity, message history - is in emitd.store;
-- presence, recovery sessions, rate limits and monitoring are emitd's own
-- cluster-wide state. The token was verified at connect (jwt group).

local CHATS_CLAIM = vars.chats_claim or "chats"
local USER_CLAIM = vars.user_claim or "sub"
local NAME_CLAIM = vars.username_claim or "username"
local ACCESS_URL = vars.access_url or ""
local ACCESS_CACHE = vars.access_cache or 30000
local TYPING_EXPIRY = vars.typing_expiry or 5000
local MAX_CONTENT = vars.max_content or 1500
local HISTORY = vars.history or 100
local RECEIPT_TTL = vars.receipt_ttl or 7 * 24 * 3600 * 1000
local MONITOR_CLAIM = vars.monitoring_claim or "role"
local MONITOR_VALUES = vars.monitoring_values or { "admin" }

local MAX_ID = 128

local T = {
  unauth = "User not authenticated",
  invalid = "Invalid request data",
  denied = "Chat not found or access denied",
  msg_limit = "Message rate limit exceeded. Please slow down.",
  typing_limit = "Typing rate limit exceeded. Please slow down.",
  forbidden = "Access denied",
}

local store = emitd.store
local iso = emitd.isotime

local function reply(cb, v)
  if type(cb) == "function" then cb(v) end
end

local function fail(cb, message)
  reply(cb, { success = false, message = message })
end

local function id_ok(v)
  return type(v) == "string" and #v > 0 and #v <= MAX_ID and not v:find("[%c]")
end

local function room_of(chat)
  return "chat:" .. chat
end

local function now_iso()
  return iso(emitd.now())
end

-- ---- who the socket is ----

local function user_of(socket)
  return socket.data.userId
end

-- A token that expired since the connect no longer counts.
local function authenticated(socket)
  local exp = socket.claims and socket.claims.exp
  return socket.data.userId ~= nil and (math.type(exp) ~= "integer" or exp * 1000 > emitd.now())
end

local function is_monitor(socket)
  if #MONITOR_VALUES == 0 then return true end
  local v = socket.claims[MONITOR_CLAIM]
  local have = type(v) == "table" and v or { v }
  for _, x in ipairs(have) do
    for _, want in ipairs(MONITOR_VALUES) do
      if x == want then return true end
    end
  end
  return false
end

-- ---- which chats a user may join: the token's claim, or the backend ----

-- The claim: a list of chat ids, or of { id, name, description }, or "*".
local function claim_chats(socket)
  local c = socket.claims[CHATS_CLAIM]
  local list = {}
  if type(c) ~= "table" then return list, c == "*" end
  for _, e in ipairs(c) do
    if id_ok(e) then
      list[#list + 1] = { chatId = e, name = e }
    elseif type(e) == "table" and id_ok(e.id or e.chatId) then
      local id = e.id or e.chatId
      list[#list + 1] = { chatId = id, name = type(e.name) == "string" and e.name or id,
                          description = type(e.description) == "string" and e.description or nil }
    end
  end
  return list, false
end

-- The chat's { chatId, name, description } when the user may use it, else nil.
local function access(socket, chat)
  if not id_ok(chat) then return nil end
  local user = user_of(socket)
  if ACCESS_URL == "" then
    local list, all = claim_chats(socket)
    for _, e in ipairs(list) do
      if e.chatId == chat then return e end
    end
    return all and { chatId = chat, name = chat } or nil
  end
  local key = "chat:acl\n" .. user .. "\n" .. chat
  local cached = store.get(key)
  if cached ~= nil then
    return cached ~= false and cached or nil
  end
  local res, err = emitd.http{ url = ACCESS_URL, method = "POST",
                               body = { userId = user, chatId = chat } }
  if res == nil then
    emitd.log("warn", "chat access check failed: " .. tostring(err))
    return nil
  end
  local j = res.json
  local entry = false
  if res.status == 200 and type(j) == "table" and j.allowed == true then
    entry = { chatId = chat, name = type(j.name) == "string" and j.name or chat,
              description = type(j.description) == "string" and j.description or nil }
  end
  store.set(key, entry, ACCESS_CACHE)
  return entry or nil
end

local function user_chats(socket)
  if ACCESS_URL == "" then
    return (claim_chats(socket))
  end
  local res = emitd.http{ url = ACCESS_URL, method = "POST", body = { userId = user_of(socket) } }
  local list = {}
  if res and res.status == 200 and type(res.json) == "table" and type(res.json.chats) == "table" then
    for _, e in ipairs(res.json.chats) do
      local id = type(e) == "table" and (e.chatId or e.id) or e
      if id_ok(id) then
        list[#list + 1] = { chatId = id, name = type(e) == "table" and type(e.name) == "string" and e.name or id }
      end
    end
  end
  return list
end

-- ---- shared chat state ----

local function participants(chat)
  return store.incr("chat:parts\n" .. chat, 0)
end

-- Count the user among the chat's participants; true when it is new.
local function add_participant(chat, user)
  if store.incr("chat:part\n" .. chat .. "\n" .. user) == 1 then
    store.incr("chat:parts\n" .. chat)
    return true
  end
  return false
end

local function last_activity(chat)
  return store.get("chat:last\n" .. chat) or emitd.null
end

local function touch(chat)
  store.set("chat:last\n" .. chat, now_iso())
end

-- A presence record in the seed's shape.
local function person(p, full)
  local info = p.info or {}
  local v = { userId = p.userId, username = info.username or p.userId, status = p.status,
              lastSeen = iso(p.lastSeen), connectedAt = iso(p.connectedAt) }
  if full then
    v.email = info.email
    v.socketId = info.socketId
    v.userAgent = info.userAgent
    v.ipAddress = info.ipAddress
  end
  return v
end

local function people(list)
  local out = emitd.array()
  for i, p in ipairs(list) do out[i] = person(p) end
  return out
end

local function online_in(chat)
  return people(nsp:room_online(room_of(chat)))
end

-- ---- typing, with expiry ----

local function typing_key(chat, user)
  return "chat:typing\n" .. chat .. "\n" .. user
end

-- The users typing in a chat now (their entries not expired).
local function typing_users(chat)
  local out, seen = emitd.array(), {}
  local now = emitd.now()
  for _, user in ipairs(store.range("chat:typers\n" .. chat) or {}) do
    if not seen[user] then
      seen[user] = true
      local t = store.get(typing_key(chat, user))
      if type(t) == "table" and t["until"] > now then
        out[#out + 1] = { userId = user, username = t.username, chatId = chat, startedAt = iso(t.startedAt) }
      end
    end
  end
  return out
end

local function typing_event(chat, user, username, typing, expired)
  return { chatId = chat, userId = user, username = username, isTyping = typing,
           expired = expired or nil, timestamp = now_iso() }
end

-- Stop the user's typing in a chat; broadcast when it was typing.
local function stop_typing(socket, chat, user, username, expired)
  if store.del(typing_key(chat, user)) then
    store.incr("chat:stats:typing", -1)
    local to = socket and socket:to(room_of(chat)) or nsp:to(room_of(chat))
    to:emit("user:typing", typing_event(chat, user, username, false, expired))
  end
end

local function start_typing(socket, chat, user, username)
  local key = typing_key(chat, user)
  local now = emitd.now()
  local old = store.get(key)
  local started = type(old) == "table" and old.startedAt or now
  store.set(key, { startedAt = started, ["until"] = now + TYPING_EXPIRY, username = username },
            TYPING_EXPIRY + 60000)
  if old == nil then
    store.incr("chat:stats:typing")
    store.push("chat:typers\n" .. chat, user, 200, TYPING_EXPIRY + 60000)
    socket:to(room_of(chat)):emit("user:typing", typing_event(chat, user, username, true))
  end
  -- Expiry: whichever worker set the latest deadline ends it.
  emitd.after(TYPING_EXPIRY + 20, function()
    local t = store.get(key)
    if type(t) == "table" and t["until"] <= emitd.now() then
      stop_typing(nil, chat, user, username, true)
    end
  end)
end

-- ---- receipts ----

local function message_key(id)
  return "chat:msg\n" .. id
end

-- Record that user delivered / read the message; broadcast it once.
local function receipt(socket, kind, data, cb, ok_text)
  if not authenticated(socket) then return fail(cb, T.unauth) end
  if type(data) ~= "table" or not id_ok(data.messageId) or not id_ok(data.chatId) then
    return fail(cb, T.invalid)
  end
  local m = store.get(message_key(data.messageId))
  if type(m) ~= "table" or m.chatId ~= data.chatId or access(socket, data.chatId) == nil then
    return fail(cb, "Message not found or access denied")
  end
  local user = user_of(socket)
  local at = now_iso()
  if store.incr("chat:" .. kind .. "\n" .. data.messageId .. "\n" .. user, 1, RECEIPT_TTL) == 1 then
    store.push("chat:" .. kind .. "s\n" .. data.messageId, user, 1000, RECEIPT_TTL)
    store.set("chat:upd\n" .. data.messageId, at, RECEIPT_TTL)
    store.incr("chat:stats:" .. kind)
    local ev = { messageId = data.messageId, chatId = data.chatId, userId = user }
    ev[kind == "delivered" and "deliveredAt" or "readAt"] = at
    nsp:to(room_of(data.chatId)):emit("message:" .. kind, ev)
  end
  reply(cb, { success = true, message = ok_text })
end

-- ---- presence broadcasts (once per change, cluster-wide) ----

local function online_list()
  local list = nsp:online()
  local out = emitd.array()
  for i = 1, math.min(#list, 200) do out[i] = person(list[i]) end
  return { users = out, total = #list }
end

nsp:on_presence("online", function(p)
  nsp:emit("user:online", { userId = p.userId, username = (p.info or {}).username or p.userId,
                            status = p.status, timestamp = now_iso() })
  nsp:emit("users:online", online_list())
end)
nsp:on_presence("offline", function(p)
  nsp:emit("user:offline", { userId = p.userId, username = (p.info or {}).username or p.userId,
                             lastSeen = iso(p.lastSeen), timestamp = now_iso() })
  nsp:emit("users:online", online_list())
end)
nsp:on_presence("status", function(p, old)
  nsp:emit("user:status-changed", { userId = p.userId, username = (p.info or {}).username or p.userId,
                                    status = p.status, previousStatus = old, timestamp = now_iso() })
end)
local function room_update(room)
  local chat = room:match("^chat:(.*)$")
  if chat then
    local online = online_in(chat)
    nsp:to(room):emit("room:online-update", { chatId = chat, onlineUsers = online, onlineCount = #online })
  end
end
nsp:on_presence("room_online", function(room) room_update(room) end)
nsp:on_presence("room_offline", function(room) room_update(room) end)

-- ---- recovery sessions in the seed's shape ----

local function chats_in(rooms)
  local out = emitd.array()
  for _, r in ipairs(rooms or {}) do
    local chat = r:match("^chat:(.*)$")
    if chat then out[#out + 1] = chat end
  end
  return out
end

local function session_shape(s)
  return { userId = s.userId or emitd.null, socketId = s.socketId,
           connectedAt = iso(s.connectedAt), lastActivity = iso(s.lastActivity),
           rooms = chats_in(s.rooms), messageQueue = emitd.array(s.messageQueue or {}),
           recoveryToken = s.recoveryToken or emitd.null }
end

local function monitor_event(e)
  e.timestamp = iso(e.timestamp)
  return e
end

function on_connect(socket)
  local claims = socket.claims
  local user = claims[USER_CLAIM]
  if math.type(user) == "integer" then user = tostring(user) end
  if not id_ok(user) then
    return false, T.unauth
  end
  local username = type(claims[NAME_CLAIM]) == "string" and claims[NAME_CLAIM] or user
  local hs = socket.handshake
  socket.data = { userId = user, username = username }
  local ok, why = socket:set_user(user, {
    username = username:sub(1, 64),
    email = type(claims.email) == "string" and claims.email:sub(1, 128) or nil,
    socketId = socket.id, ipAddress = hs.address,
    userAgent = (hs.headers["user-agent"] or ""):sub(1, 160) })
  if not ok then
    emitd.log("warn", "chat: presence for " .. user .. ": " .. tostring(why))
  end

  local typing_in = {}      -- chats this socket is typing in

  local function on(event, fn)
    socket:on(event, function(data, cb)
      if type(data) == "function" then data, cb = nil, data end
      if not authenticated(socket) then return fail(cb, T.unauth) end
      fn(data, cb)
    end)
  end

  -- ---- rooms ----

  on("join:chat", function(data, cb)
    local chat = type(data) == "table" and data.chatId
    if not id_ok(chat) then return fail(cb, T.invalid) end
    local entry = access(socket, chat)
    if entry == nil then return fail(cb, T.denied) end
    socket:join(room_of(chat))
    local new = add_participant(chat, user)
    touch(chat)
    local info = { chatId = chat, participantCount = participants(chat), isActive = true,
                   lastActivity = last_activity(chat) }
    if new then
      -- "room:info - Room information updated": a new participant
      socket:to(room_of(chat)):emit("room:info", { chatId = chat, participantCount = info.participantCount,
        onlineCount = #nsp:room_online(room_of(chat)), lastActivity = info.lastActivity })
    end
    socket:emit("room:joined", { chatId = chat, roomInfo = info })
    socket:to(room_of(chat)):emit("user:joined", { chatId = chat, userId = user, username = username,
                                                   timestamp = now_iso() })
    reply(cb, { success = true, message = "Joined chat successfully", roomInfo = info })
  end)

  on("leave:chat", function(data, cb)
    local chat = type(data) == "table" and data.chatId
    if not id_ok(chat) then return fail(cb, T.invalid) end
    if access(socket, chat) == nil then return fail(cb, T.denied) end
    stop_typing(socket, chat, user, username)
    typing_in[chat] = nil
    socket:leave(room_of(chat))
    socket:emit("room:left", { chatId = chat })
    socket:to(room_of(chat)):emit("user:left", { chatId = chat, userId = user, username = username,
                                                 timestamp = now_iso() })
    reply(cb, { success = true, message = "Left chat successfully" })
  end)

  on("room:info", function(data, cb)
    local chat = type(data) == "table" and data.chatId
    if not id_ok(chat) then return fail(cb, T.invalid) end
    local entry = access(socket, chat)
    if entry == nil then return fail(cb, T.denied) end
    local online = #nsp:room_online(room_of(chat))
    reply(cb, { success = true, roomInfo = {
      chatId = chat, name = entry.name, description = entry.description or "",
      participantCount = participants(chat), onlineCount = online, isActive = online > 0,
      lastActivity = last_activity(chat) } })
  end)

  on("room:list", function(_, cb)
    local rooms = emitd.array()
    for _, e in ipairs(user_chats(socket)) do
      rooms[#rooms + 1] = { chatId = e.chatId, name = e.name, participantCount = participants(e.chatId),
                            lastActivity = last_activity(e.chatId) }
    end
    reply(cb, { success = true, rooms = rooms })
  end)

  on("room:online", function(data, cb)
    local chat = type(data) == "table" and data.chatId
    if not id_ok(chat) then return fail(cb, T.invalid) end
    if access(socket, chat) == nil then return fail(cb, T.denied) end
    reply(cb, { success = true, onlineUsers = online_in(chat) })
  end)

  -- ---- messages ----

  on("message:send", function(data, cb)
    if type(data) ~= "table" or not id_ok(data.chatId) or type(data.content) ~= "string"
       or #data.content == 0 or #data.content > MAX_CONTENT
       or (data.type ~= nil and (type(data.type) ~= "string" or not data.type:match("^[%w_-]+$")
                                 or #data.type > 32)) then
      return fail(cb, T.invalid)
    end
    local chat = data.chatId
    if access(socket, chat) == nil then return fail(cb, T.denied) end
    if not emitd.limit("chat:msg\n" .. user, 100, 60000) then return fail(cb, T.msg_limit) end
    local seq = store.incr("chat:seq") or 0
    local now = emitd.now()
    local msg = { id = string.format("%x-%x-%x", now, emitd.worker, seq), content = data.content,
                  type = data.type or "text", chatId = chat, userId = user, createdAt = iso(now),
                  user = { id = user, username = username } }
    store.set(message_key(msg.id), { chatId = chat, userId = user, sentAt = msg.createdAt }, RECEIPT_TTL)
    store.incr("chat:stats:messages")
    store.push("chat:history\n" .. chat, msg, HISTORY)
    touch(chat)
    stop_typing(socket, chat, user, username)
    typing_in[chat] = nil
    socket:to(room_of(chat)):emit("message:new", msg)
    socket:emit("message:sent", msg)
    reply(cb, { success = true, message = "Message sent successfully", sentMessage = msg })
  end)

  on("message:typing", function(data, cb)
    if type(data) ~= "table" or not id_ok(data.chatId) or type(data.isTyping) ~= "boolean" then
      return fail(cb, T.invalid)
    end
    if access(socket, data.chatId) == nil then return fail(cb, T.denied) end
    if not emitd.limit("chat:typing\n" .. user, 10, 60000) then return fail(cb, T.typing_limit) end
    if data.isTyping then
      start_typing(socket, data.chatId, user, username)
      typing_in[data.chatId] = true
    else
      typing_in[data.chatId] = nil
      stop_typing(socket, data.chatId, user, username)
    end
    reply(cb, { success = true, message = "Typing status updated" })
  end)

  on("message:typing-users", function(data, cb)
    local chat = type(data) == "table" and data.chatId
    if not id_ok(chat) then return fail(cb, T.invalid) end
    if access(socket, chat) == nil then return fail(cb, T.denied) end
    reply(cb, { success = true, typingUsers = typing_users(chat) })
  end)

  socket:on("message:delivered", function(data, cb)
    receipt(socket, "delivered", data, cb, "Delivery confirmed")
  end)
  socket:on("message:read", function(data, cb)
    receipt(socket, "read", data, cb, "Read confirmation recorded")
  end)

  on("message:delivery-status", function(data, cb)
    local id = type(data) == "table" and data.messageId
    if not id_ok(id) then return fail(cb, T.invalid) end
    local m = store.get(message_key(id))
    if type(m) ~= "table" or access(socket, m.chatId) == nil then
      return fail(cb, "Message not found or access denied")
    end
    reply(cb, { success = true, status = {
      messageId = id, deliveredTo = emitd.array(store.range("chat:delivereds\n" .. id)),
      readBy = emitd.array(store.range("chat:reads\n" .. id)), sentAt = m.sentAt,
      lastUpdate = store.get("chat:upd\n" .. id) or m.sentAt } })
  end)

  on("message:stats", function(_, cb)
    reply(cb, { success = true, stats = {
      activeTypingUsers = math.max(0, store.incr("chat:stats:typing", 0)),
      trackedMessages = store.incr("chat:stats:messages", 0),
      totalDelivered = store.incr("chat:stats:delivered", 0),
      totalRead = store.incr("chat:stats:read", 0) } })
  end)

  -- ---- presence ----

  on("presence:update-status", function(data, cb)
    local st = type(data) == "table" and data.status
    if st ~= "online" and st ~= "away" and st ~= "busy" then return fail(cb, T.invalid) end
    local done, why = socket:set_status(st)
    if not done then return fail(cb, why) end
    reply(cb, { success = true, message = "Status updated successfully" })
  end)

  on("presence:online-users", function(_, cb)
    reply(cb, { success = true, users = people(nsp:online()) })
  end)

  on("presence:user-status", function(data, cb)
    local id = type(data) == "table" and data.userId
    if not id_ok(id) then return fail(cb, T.invalid) end
    local p = nsp:presence(id)
    if p == nil then return fail(cb, "User not found") end
    -- the address and user agent only to the user itself and to monitors
    reply(cb, { success = true, presence = person(p, id == user or is_monitor(socket)) })
  end)

  on("presence:stats", function(_, cb)
    reply(cb, { success = true, stats = nsp:presence_stats() })
  end)

  -- ---- recovery ----

  on("connection:create-session", function(_, cb)
    local token, why = socket:create_session()
    if token == nil then return fail(cb, why) end
    local ttl = vars.recovery_ttl or 120000
    socket:emit("connection:recovery-token", { recoveryToken = token, expiresIn = ttl,
                                               expiresAt = iso(emitd.now() + ttl) })
    reply(cb, { success = true, recoveryToken = token })
  end)

  on("connection:recover", function(data, cb)
    local token = type(data) == "table" and data.recoveryToken
    if type(token) ~= "string" or #token == 0 or #token > 128 then return fail(cb, T.invalid) end
    local s, why = socket:recover_session(token)
    if s == nil then return fail(cb, why) end
    if s.userId ~= nil and s.userId ~= user then
      -- another user's token: give its rooms back
      for _, r in ipairs(s.rooms or {}) do socket:leave(r) end
      return fail(cb, "Invalid or expired recovery token")
    end
    local shaped = session_shape(s)
    socket:emit("connection:recovered", shaped)
    if #shaped.messageQueue > 0 then
      socket:emit("connection:queued-messages", { messages = shaped.messageQueue,
                                                  count = #shaped.messageQueue })
    end
    reply(cb, { success = true, message = "Connection recovered successfully", session = shaped })
  end)

  on("connection:session-info", function(_, cb)
    local s = socket:session_info()
    if s == nil then
      s = { userId = user, socketId = socket.id, connectedAt = socket.handshake.issued,
            lastActivity = emitd.now(), rooms = socket:rooms() }
    end
    reply(cb, { success = true, sessionInfo = session_shape(s) })
  end)

  on("connection:stats", function(_, cb)
    local st = emitd.session_stats()
    reply(cb, { success = true, stats = {
      activeSessions = st.activeSessions, recoveryTokens = st.recoveryTokens,
      queuedMessages = st.queuedMessages,
      averageSessionAge = math.floor(st.averageSessionAge / 6000 + 0.5) / 10 } })   -- minutes
  end)

  -- ---- monitoring (monitors only: it shows other users' addresses) ----

  local function monitor(event, fn)
    on(event, function(data, cb)
      if not is_monitor(socket) then return fail(cb, T.forbidden) end
      fn(data, cb)
    end)
  end

  monitor("monitoring:metrics", function(_, cb)
    local m = emitd.metrics()
    m.lastReset = iso(m.lastReset)
    reply(cb, { success = true, metrics = m })
  end)

  monitor("monitoring:events", function(data, cb)
    local f = type(data) == "table" and data or {}
    local filter = { limit = math.type(f.limit) == "integer" and math.max(1, math.min(f.limit, 1000)) or 50,
                     type = type(f.type) == "string" and f.type or nil,
                     userId = type(f.userId) == "string" and f.userId or nil,
                     ip = type(f.ip) == "string" and f.ip or nil }
    local events = emitd.array()
    for i, e in ipairs(emitd.connection_events(filter)) do events[i] = monitor_event(e) end
    reply(cb, { success = true, events = events })
  end)

  monitor("monitoring:stats", function(_, cb)
    local s = emitd.monitor_stats()
    s.metrics.lastReset = iso(s.metrics.lastReset)
    for _, e in ipairs(s.recentEvents) do monitor_event(e) end
    reply(cb, { success = true, stats = s })
  end)

  monitor("monitoring:health", function(_, cb)
    local s = emitd.monitor_stats()
    local issues, recs = emitd.array(), emitd.array()
    local status = "healthy"
    local function issue(level, text, rec)
      issues[#issues + 1] = text
      recs[#recs + 1] = rec
      if level == "critical" or status == "healthy" then status = level end
    end
    if s.errorRate >= 0.25 then
      issue("critical", string.format("High connection error rate: %.0f%%", s.errorRate * 100),
            "Check authentication failures and rate-limited addresses")
    elseif s.errorRate >= 0.10 then
      issue("warning", string.format("Elevated connection error rate: %.0f%%", s.errorRate * 100),
            "Monitor authentication failures")
    end
    if (s.metrics.limitViolations or 0) > 100 then
      issue("warning", "Many clients closed for breaking limits",
            "Look for misbehaving clients in monitoring:events")
    end
    local evicted = emitd.session_stats().evictedMessages or 0
    if evicted > 0 then
      issue("warning", "The recovery log dropped " .. evicted .. " messages",
            "Raise recovery.buffer in emitd.conf")
    end
    reply(cb, { success = true, health = { status = status, issues = issues, recommendations = recs } })
  end)

  -- Gone: its typing ends now, not at the expiry.
  socket:on("disconnect", function()
    for chat in pairs(typing_in) do stop_typing(nil, chat, user, username) end
  end)
end
