-- main.lua - handlers of the end-to-end tests, served on "/" and "/custom".
-- Written against the handler API of doc/DESIGN.md; every event answers
-- through its ack when the client asked for one.

-- Split the handler arguments into (packed data, ack function or nil).
local function split_ack(...)
  local args = table.pack(...)
  local ack = nil
  if args.n > 0 and type(args[args.n]) == "function" then
    ack = args[args.n]
    args[args.n] = nil
    args.n = args.n - 1
  end
  return args, ack
end

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", string.byte(c)) end))
end

-- What the script received, as plain values the test can compare:
-- "buf:<hex>", "int:<n>", "float:<n>", "str:<bytes>", "bool:<v>", "null",
-- tables described key by key.
local function describe(v)
  if emitd.is_buffer(v) then return "buf:" .. hex(v:tostring()) end
  if v == emitd.null then return "null" end
  local t = type(v)
  if t == "number" then
    if math.type(v) == "integer" then return "int:" .. tostring(v) end
    return "float:" .. string.format("%.17g", v)
  end
  if t == "string" then return "str:" .. #v end
  if t == "boolean" then return "bool:" .. tostring(v) end
  if t == "table" then
    local r = {}
    for k, x in pairs(v) do r[k] = describe(x) end
    return r
  end
  return t
end

function on_connect(socket)
  -- Echo: answer through the ack, or emit "echo" back with the same data.
  socket:on("echo", function(...)
    local args, ack = split_ack(...)
    if ack then
      ack(table.unpack(args, 1, args.n))
    else
      socket:emit("echo", table.unpack(args, 1, args.n))
    end
  end)

  -- Two handlers of one event run in the order they were added, and off()
  -- removes both.
  local order = {}
  socket:on("twice", function() order[#order + 1] = "first" end)
  socket:on("twice", function(ack)
    order[#order + 1] = "second"
    if type(ack) == "function" then ack(emitd.array(order)) end
  end)
  socket:on("twice_off", function(ack) socket:off("twice"); ack(true) end)

  socket:on("describe", function(...)
    local args, ack = split_ack(...)
    local r = {}
    for i = 1, args.n do r[i] = describe(args[i]) end
    if ack then ack(emitd.array(r)) end
  end)

  -- broker_counts(): this worker's records from and to the broker.
  socket:on("broker_counts", function(ack)
    ack(emitd.broker_counts())
  end)

  -- A server-side event to the other servers (Redis): nsp:server_emit's
  -- result, or its error, through the ack.
  socket:on("server_emit", function(event, arg, ack)
    local ok, r = pcall(nsp.server_emit, nsp, event, arg)
    if ok then ack(r) else ack("error: " .. tostring(r)) end
  end)
  -- The same waiting for the other servers' answers: {sent, err, responses}
  -- through the ack once they came (sent false without redis: no answer).
  socket:on("server_ask", function(event, arg, ack)
    local ok, r = pcall(nsp.server_emit, nsp, event, arg, function(err, responses)
      ack({ sent = true, err = err or emitd.null, responses = responses })
    end)
    if not ok then ack("error: " .. tostring(r)) elseif not r then ack({ sent = false }) end
  end)

  socket:on("whoami", function(ack)
    ack({
      id = socket.id,
      nsp = socket.nsp,
      nsp_name = nsp.name,
      params = socket.params,
      worker = emitd.worker,
      auth = socket.handshake.auth,
      query = socket.handshake.query,
      address = socket.handshake.address,
      url = socket.handshake.url,
      rooms = emitd.array(socket:rooms()),
    })
  end)

  -- ask(event, ...): the server emits `event` with the rest of the data and
  -- an ack callback; the client's ack reply comes back as "answer".
  socket:on("ask", function(...)
    local args, ack = split_ack(...)
    local event = args[1]
    local out = {}
    for i = 2, args.n do out[#out + 1] = args[i] end
    out[#out + 1] = function(...)
      socket:emit("answer", ...)
    end
    socket:emit(event, table.unpack(out, 1, #out))
    if ack then ack(true) end
  end)

  -- Binary values made by the script.
  socket:on("make_binary", function(ack)
    local a = emitd.buffer("\0\1\2\255")
    local empty = emitd.buffer("")
    local nested = { list = { 1, emitd.buffer("abc"), emitd.null }, deep = { b = emitd.buffer("\254") } }
    if ack then
      ack(a, empty, nested)
    else
      socket:emit("binary", a, empty, nested)
    end
  end)

  socket:on("join", function(room, ack)
    socket:join(room)
    if ack then ack(emitd.array(socket:rooms())) end
  end)

  socket:on("leave", function(room, ack)
    socket:leave(room)
    if ack then ack(emitd.array(socket:rooms())) end
  end)

  -- to_room(room, event, ...): room members except the sender.
  socket:on("to_room", function(...)
    local args, ack = split_ack(...)
    socket:to(args[1]):emit(table.unpack(args, 2, args.n))
    if ack then ack(true) end
  end)

  -- nsp_to_room(room, event, ...): every member of the room.
  socket:on("nsp_to_room", function(...)
    local args, ack = split_ack(...)
    nsp:to(args[1]):emit(table.unpack(args, 2, args.n))
    if ack then ack(true) end
  end)

  -- broadcast(event, ...): everyone in the namespace but the sender.
  socket:on("broadcast", function(...)
    local args, ack = split_ack(...)
    socket.broadcast:emit(table.unpack(args, 1, args.n))
    if ack then ack(true) end
  end)

  -- except_room(room, event, ...): everyone but that room and the sender.
  socket:on("except_room", function(...)
    local args, ack = split_ack(...)
    socket:except(args[1]):emit(table.unpack(args, 2, args.n))
    if ack then ack(true) end
  end)

  socket:on("disconnect_me", function(close)
    socket:disconnect(close == true)
  end)

  socket:on("log", function(level, message, ack)
    emitd.log(level, message)
    if ack then ack(true) end
  end)

  socket:on("json", function(s, ack)
    ack(emitd.json_encode(emitd.json_decode(s)))
  end)

  socket:on("boom", function()
    error("boom from the test handler")   -- E2E-BOOM-LINE
  end)

  -- Members of "watchers" hear about every socket that leaves, with why.
  socket:on("disconnect", function(reason)
    nsp:to("watchers"):emit("left", socket.id, reason)
  end)

  socket:emit("welcome", { id = socket.id, nsp = socket.nsp, worker = emitd.worker })
end

-- on_server_emit(event, ...): a server-side event from another server
-- (Redis: serverSideEmit): told to this namespace's clients as
-- "server_event", and answered when the sender waits for an answer.
function on_server_emit(event, ...)
  local args, ack = split_ack(...)
  nsp:emit("server_event", event, table.unpack(args, 1, args.n))
  if ack then ack({ from = "emitd", event = event, worker = emitd.worker }) end
end
