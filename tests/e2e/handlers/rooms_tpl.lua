-- rooms_tpl.lua - handlers of the room template tests: what on_connect
-- sees, and broadcasts to a room.

function on_connect(socket)
  local at_connect = socket:rooms()
  socket:on("rooms_at_connect", function(ack) ack(at_connect) end)
  socket:on("whoami", function(ack) ack({ worker = emitd.worker, id = socket.id }) end)
  socket:on("to_room", function(room, event, value, ack)
    nsp:to(room):emit(event, value)
    ack(true)
  end)
end
