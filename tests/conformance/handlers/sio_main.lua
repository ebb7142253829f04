-- sio_main.lua - namespace "/" for the socket.io-protocol test suite
-- (socketio/socket.io-protocol, test-suite/). Behaviour the suite expects:
--   on connect:          emit "auth" with the CONNECT payload   -> 42["auth",{...}]
--   "message", ...:      emit "message-back" with the same args -> 42["message-back",...]
--                        (binary attachments come back as binary attachments)
--   "message-with-ack", ..., ack: ack(...) with the same args   -> 43<id>[...] / 46...

-- Split handler arguments into (packed args, trailing ack function or nil).
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

function on_connect(socket)
  socket:emit("auth", socket.handshake.auth)

  socket:on("message", function(...)
    local args = table.pack(...)
    socket:emit("message-back", table.unpack(args, 1, args.n))
  end)

  socket:on("message-with-ack", function(...)
    local args, ack = split_ack(...)
    if ack then
      ack(table.unpack(args, 1, args.n))
    end
  end)
end
