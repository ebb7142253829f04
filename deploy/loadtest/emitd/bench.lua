-- bench.lua - the server side of emitd-bench(1)'s scenarios, namespace "/".
--
--   echo     emit("echo", x, ack)              -> ack(x)
--   join     emit("join", room, ack)           -> socket:join(room); ack(true)
--   publish  emit("publish", room, payload[, ack])
--                                              -> "tick" with the same payload
--                                                 to every member of the room;
--                                                 ack(true) once it is queued
--
-- The payload of "publish" carries the sender's timestamp ("t", in
-- microseconds of the load tool's monotonic clock), which emitd-bench reads
-- back from each "tick" to measure end-to-end latency; the script passes it
-- through untouched.
--
-- nsp:to(room):emit reaches the room's members on every worker through the
-- broker. (An emitd built before the broker kept rooms per worker: run the
-- broadcast scenario against workers = 1 there.)

local MAX_ROOM_NAME = 64

local function valid_room(room)
  return type(room) == "string" and #room > 0 and #room <= MAX_ROOM_NAME
end

function on_connect(socket)
  socket:on("echo", function(...)
    local args = table.pack(...)
    local ack = args[args.n]
    if type(ack) == "function" then
      ack(table.unpack(args, 1, args.n - 1))
    end
  end)

  socket:on("join", function(room, ack)
    if not valid_room(room) then
      if type(ack) == "function" then ack(false) end
      return
    end
    socket:join(room)
    if type(ack) == "function" then ack(true) end
  end)

  socket:on("publish", function(room, payload, ack)
    if valid_room(room) then
      nsp:to(room):emit("tick", payload)
    end
    if type(ack) == "function" then ack(valid_room(room)) end
  end)
end
