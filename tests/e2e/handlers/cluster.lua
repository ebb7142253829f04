-- cluster.lua - handlers of the cluster-state end-to-end tests (presence,
-- connection-state recovery, recovery tokens, rate limits, monitoring),
-- written against the API of doc/DESIGN.md. Event names follow chat.md
-- where it has one.

-- Presence changes are broadcast to the whole namespace, once per change.
nsp:on_presence("online", function(p)
  nsp:emit("user:online", { userId = p.userId, status = p.status })
end)
nsp:on_presence("offline", function(p)
  nsp:emit("user:offline", { userId = p.userId, lastSeen = emitd.isotime(p.lastSeen) })
end)
nsp:on_presence("status", function(p, old)
  nsp:emit("user:status-changed", { userId = p.userId, status = p.status, previous = old })
end)
nsp:on_presence("room_online", function(room, p)
  nsp:to(room):emit("room:online-update", { chatId = room, userId = p.userId, online = true })
end)
nsp:on_presence("room_offline", function(room, p)
  nsp:to(room):emit("room:online-update", { chatId = room, userId = p.userId, online = false })
end)

local function reply(ack, v)
  if type(ack) == "function" then ack(v) end
end

function on_connect(socket)
  local auth = socket.handshake.auth
  if type(auth.user) == "string" then
    socket:set_user(auth.user, { username = auth.user })
    socket.data = { userId = auth.user, plan = "pro" }   -- read by the backend API's listings
  end

  socket:on("whoami", function(ack)
    reply(ack, { worker = emitd.worker, id = socket.id, recovered = socket.recovered,
                 user = socket.user or emitd.null })
  end)
  socket:on("join", function(room, ack) socket:join(room); reply(ack, true) end)
  socket:on("leave", function(room, ack) socket:leave(room); reply(ack, true) end)
  -- Broadcast to a room (sender included when it is a member).
  socket:on("to_room", function(room, event, ...)
    local args = table.pack(...)
    local ack = args.n > 0 and type(args[args.n]) == "function" and args[args.n] or nil
    nsp:to(room):emit(event, table.unpack(args, 1, ack and args.n - 1 or args.n))
    reply(ack, true)
  end)
  -- An emit to this socket alone.
  socket:on("to_self", function(event, value, ack) socket:emit(event, value); reply(ack, true) end)

  socket:on("presence:user-status", function(data, ack)
    local p = nsp:presence(data.userId)
    if p == nil then reply(ack, { success = false, message = "User not found" }) return end
    reply(ack, { success = true, presence = p })
  end)
  socket:on("presence:online-users", function(_, ack)
    reply(ack, { success = true, users = nsp:online() })
  end)
  socket:on("presence:stats", function(_, ack)
    reply(ack, { success = true, stats = nsp:presence_stats() })
  end)
  socket:on("presence:update-status", function(data, ack)
    local ok, err = socket:set_status(data.status)
    reply(ack, ok and { success = true, message = "Status updated successfully" }
                  or { success = false, message = err })
  end)
  socket:on("room:online", function(data, ack)
    reply(ack, { success = true, onlineUsers = nsp:room_online(data.chatId),
                 sockets = nsp:room_size(data.chatId) })
  end)

  -- chat.md's limits: 100 messages and 10 typing events per minute per user.
  socket:on("message:send", function(data, ack)
    local ok = emitd.limit("message:" .. (socket.user or socket.id), 100, 60000)
    if not ok then
      reply(ack, { success = false, message = "Message rate limit exceeded. Please slow down." })
      return
    end
    reply(ack, { success = true })
  end)
  socket:on("typing:start", function(data, ack)
    local ok = emitd.limit("typing:" .. (socket.user or socket.id), 10, 60000)
    if not ok then
      reply(ack, { success = false, message = "Typing rate limit exceeded. Please slow down." })
      return
    end
    reply(ack, { success = true })
  end)

  socket:on("connection:create-session", function(_, ack)
    local token, err = socket:create_session()
    reply(ack, token and { success = true, recoveryToken = token } or { success = false, message = err })
  end)
  socket:on("connection:recover", function(data, ack)
    local session, err = socket:recover_session(data.recoveryToken)
    if not session then reply(ack, { success = false, message = err }) return end
    reply(ack, { success = true, message = "Connection recovered successfully", session = session })
  end)
  socket:on("connection:session-info", function(_, ack)
    local info = socket:session_info()
    reply(ack, info and { success = true, sessionInfo = info } or { success = false, message = "No session" })
  end)
  socket:on("connection:stats", function(_, ack)
    reply(ack, { success = true, stats = emitd.session_stats() })
  end)

  socket:on("monitoring:metrics", function(_, ack)
    reply(ack, { success = true, metrics = emitd.metrics() })
  end)
  socket:on("monitoring:events", function(filter, ack)
    reply(ack, { success = true, events = emitd.connection_events(filter) })
  end)
  socket:on("monitoring:stats", function(_, ack)
    reply(ack, { success = true, stats = emitd.monitor_stats() })
  end)
end
