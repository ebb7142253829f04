-- main.lua - studio.md's default namespace "/" on emitd. See ../README.md
-- and emitd.conf(5).
--
-- Server -> client: welcome, authenticated, authError, loggedOut,
--                   roomJoined, roomLeft, pong, heartbeatAck (and whatever
--                   the backend publishes to rooms: projectUpdate, ...)
-- Client -> server: authenticate, logout, joinRoom, leaveRoom,
--                   getConnectionInfo, ping, heartbeat
--
-- The token comes with the handshake (auth.token) or with "authenticate";
-- either way it is checked here with nsp:verify_token (the namespace's jwt
-- group, which looks for none at connect), so a bad token is answered with
-- authError and the socket stays, unauthenticated.

local WELCOME = vars.welcome_message or "Welcome to Slop Studios"
local USER_CLAIM = vars.user_claim or "sub"
local MAX_ROOMS = vars.max_rooms or 50
local MAX_ROOM_NAME = vars.max_room_name or 128

local function callback(cb, v)
  if type(cb) == "function" then cb(v) end
end

local function user_room(id)
  return "user:" .. id
end

-- Forget the socket's user: leave its room, drop it from presence.
local function sign_out(socket)
  local id = socket.data.userId
  if id ~= nil then
    socket:leave(user_room(id))
    socket:set_user("")
  end
  socket.data = { connectedAt = socket.data.connectedAt }
end

-- Check a token; on success the socket becomes its user's. Returns the
-- user id, or nil and the message for the client.
local function sign_in(socket, token)
  if type(token) ~= "string" or token == "" then
    return nil, "Token is required"
  end
  local claims, message = nsp:verify_token(token)
  if claims == nil then
    return nil, message
  end
  local id = claims[USER_CLAIM]
  if (type(id) ~= "string" and math.type(id) ~= "integer") or id == "" then
    return nil, "The token names no user"
  end
  id = tostring(id)
  if socket.data.userId ~= nil and socket.data.userId ~= id then
    sign_out(socket)
  end
  local at = emitd.isotime()
  socket.data = { connectedAt = socket.data.connectedAt, userId = id,
                  email = type(claims.email) == "string" and claims.email or nil,
                  authenticatedAt = at }
  socket:join(user_room(id))
  socket:set_user(id)
  socket:emit("authenticated", { userId = id, email = socket.data.email, authenticatedAt = at })
  return id
end

-- A room a client may name: a string of 1..MAX_ROOM_NAME bytes, not
-- another user's "user:" room, not a socket id.
local function room_error(socket, room)
  if type(room) ~= "string" or #room == 0 or #room > MAX_ROOM_NAME then
    return "Room name must be a string of 1 to " .. MAX_ROOM_NAME .. " characters"
  end
  if room:sub(1, 5) == "user:" and room ~= (socket.data.userId and user_room(socket.data.userId)) then
    return "Cannot join another user's room"
  end
  if room == socket.id then
    return "Invalid room name"
  end
  return nil
end

function on_connect(socket)
  socket.data = { connectedAt = emitd.isotime() }
  socket:emit("welcome", { message = WELCOME, socketId = socket.id, serverTime = emitd.isotime() })

  local token = socket.handshake.auth.token
  if token ~= nil then
    local id, message = sign_in(socket, token)
    if id == nil then
      socket:emit("authError", { message = message })
    end
  end

  socket:on("authenticate", function(payload, cb)
    if type(payload) == "function" then payload, cb = nil, payload end
    local id, message = sign_in(socket, type(payload) == "table" and payload.token or nil)
    if id ~= nil then
      callback(cb, { success = true, userId = id })
    else
      socket:emit("authError", { message = message })
      callback(cb, { success = false, error = message })
    end
  end)

  socket:on("logout", function(cb)
    sign_out(socket)
    socket:emit("loggedOut", { message = "Logged out successfully" })
    callback(cb, { success = true })
  end)

  socket:on("joinRoom", function(room, cb)
    local err = room_error(socket, room)
    if err == nil and #socket:rooms() - 1 >= MAX_ROOMS then
      err = "Too many rooms (at most " .. MAX_ROOMS .. ")"
    end
    if err ~= nil then
      callback(cb, { success = false, error = err })
      return
    end
    socket:join(room)
    socket:emit("roomJoined", { room = room, success = true })
    callback(cb, { success = true, room = room })
  end)

  socket:on("leaveRoom", function(room, cb)
    local err = room_error(socket, room)
    if err == nil and socket.data.userId and room == user_room(socket.data.userId) then
      err = "Cannot leave your own user room"
    end
    if err ~= nil then
      callback(cb, { success = false, error = err })
      return
    end
    socket:leave(room)
    socket:emit("roomLeft", { room = room, success = true })
    callback(cb, { success = true, room = room })
  end)

  socket:on("getConnectionInfo", function(cb)
    callback(cb, { socketId = socket.id, connected = socket.connected,
                   rooms = emitd.array(socket:rooms()),
                   authenticated = socket.data.userId ~= nil,
                   connectedAt = socket.data.connectedAt })
  end)

  socket:on("ping", function(cb)
    local now = emitd.now()
    socket:emit("pong", { timestamp = now })
    callback(cb, { timestamp = now })
  end)

  socket:on("heartbeat", function(payload, cb)
    if type(payload) == "function" then payload, cb = nil, payload end
    local now = emitd.now()
    local sent = type(payload) == "table" and payload.timestamp or nil
    local latency = emitd.null
    if type(sent) == "number" and sent == sent and sent <= now and now - sent < 86400000 then
      latency = math.floor(now - sent)
    end
    local beat = { timestamp = now, serverTime = emitd.isotime(now), latency = latency }
    socket:emit("heartbeatAck", beat)
    callback(cb, beat)
  end)
end
