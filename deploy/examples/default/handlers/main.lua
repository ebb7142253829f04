-- main.lua - example handler for the namespace "/". See emitd.conf(5),
-- section HANDLER SCRIPTS.
--
-- Client events (socket.io-client):
--   socket.emit("echo", ...args, (...same) => {})      echo with ack
--   socket.emit("join", "room", (rooms) => {})         join a room
--   socket.emit("leave", "room", (rooms) => {})        leave a room
--   socket.emit("say", "room", "text")                 -> "said" to the room
--   socket.emit("upload", Buffer, (info) => {})        binary in, JSON ack
--   socket.emit("download", n, (buf) => {})            binary out (n bytes)
--
-- Rooms span the workers: "say" reaches the room's members on every
-- worker (the broker relays it), as on one Node server.

local MAX_ROOM_NAME = 64

local function valid_room(room)
  return type(room) == "string" and #room > 0 and #room <= MAX_ROOM_NAME
end

-- Called for every client that joins "/". Return false, "message"[, data]
-- to refuse it; the client gets a connect_error with that message and data.
function on_connect(socket)
  -- socket.handshake.auth is what the client passed as { auth: {...} }.
  local name = socket.handshake.auth.name
  if name ~= nil and type(name) ~= "string" then
    return false, "auth.name must be a string", { field = "name" }
  end
  socket.data.name = name or socket.id

  socket:emit("welcome", { id = socket.id, worker = emitd.worker,
                           time = emitd.now() })

  -- Echo: answer with the same arguments when the client asked for an ack.
  -- If it did, the ack function is the last argument.
  socket:on("echo", function(...)
    local args = table.pack(...)
    local ack = args[args.n]
    if type(ack) == "function" then
      ack(table.unpack(args, 1, args.n - 1))
    else
      socket:emit("echo", ...)
    end
  end)

  socket:on("join", function(room, ack)
    if not valid_room(room) then
      if type(ack) == "function" then ack({ error = "bad room name" }) end
      return
    end
    socket:join(room)
    -- Tell the others in the room (not the one joining).
    socket:to(room):emit("joined", { room = room, name = socket.data.name })
    if type(ack) == "function" then ack(socket:rooms()) end
  end)

  socket:on("leave", function(room, ack)
    if valid_room(room) then
      socket:leave(room)
      socket:to(room):emit("left", { room = room, name = socket.data.name })
    end
    if type(ack) == "function" then ack(socket:rooms()) end
  end)

  -- Everyone in the room, the sender included, gets "said"; a client may
  -- only speak in a room it has joined.
  socket:on("say", function(room, text)
    if not valid_room(room) or type(text) ~= "string" then return end
    for _, r in ipairs(socket:rooms()) do
      if r == room then
        nsp:to(room):emit("said", { room = room, name = socket.data.name,
                                    text = text, time = emitd.now() })
        return
      end
    end
  end)

  -- Binary in: a Buffer sent by the client arrives as an emitd buffer.
  socket:on("upload", function(data, ack)
    if type(ack) ~= "function" then return end
    if not emitd.is_buffer(data) then
      ack({ error = "expected binary data" })
      return
    end
    local bytes = data:tostring()
    ack({ size = #data, first = #bytes > 0 and bytes:byte(1) or emitd.null })
  end)

  -- Binary out: the client receives a Buffer (ArrayBuffer in browsers).
  socket:on("download", function(n, ack)
    if type(ack) ~= "function" then return end
    if math.type(n) ~= "integer" or n < 0 or n > 65536 then
      ack(emitd.null)
      return
    end
    local t = {}
    for i = 1, n do t[i] = string.char((i - 1) % 256) end
    ack(emitd.buffer(table.concat(t)))
  end)

  socket:on("disconnect", function(reason)
    emitd.log("debug", socket.id .. " disconnected: " .. reason)
  end)
end
