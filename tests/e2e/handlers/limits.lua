-- limits.lua - handlers of limits.test.js: the per-client limits of the
-- "limits" group and what a script sees of them.

-- A script's top level may use the emitd.* state functions (emitd -t runs
-- it against a private state): this must not crash the check.
local boot = emitd.metrics()
assert(boot.totalConnections ~= nil)

local function reply(ack, ...)
  if type(ack) == "function" then ack(...) end
end

function on_connect(socket)
  socket:join("all")

  -- Every argument back through the ack, as received.
  socket:on("echo", function(...)
    local args = table.pack(...)
    local ack = args[args.n]
    reply(ack, table.unpack(args, 1, args.n - 1))
  end)

  socket:on("count", function(...)
    local args = table.pack(...)
    reply(args[args.n], args.n - 1)
  end)

  socket:on("worker", function(ack) reply(ack, emitd.worker) end)

  socket:on("violations", function(ack)
    reply(ack, emitd.metrics().limitViolations)
  end)

  -- Ask the client n acks; answer how many emits were taken.
  socket:on("ask_acks", function(n, ack)
    local taken = 0
    for i = 1, n do
      if socket:emit("need_ack", i, function() end) then taken = taken + 1 end
    end
    reply(ack, taken)
  end)

  socket:on("join_rooms", function(n, ack)
    for i = 1, n do socket:join("room" .. i) end
    reply(ack, #socket:rooms())
  end)

  -- Send n buffers in one event: over limits.attachments the emit is the
  -- script's error (clients would refuse the packet).
  socket:on("send_buffers", function(n, ack)
    local bufs = {}
    for i = 1, n do bufs[i] = emitd.buffer(string.char(i % 256)) end
    local ok, err = pcall(function() socket:emit("buffers", table.unpack(bufs, 1, n)) end)
    reply(ack, ok, ok and "" or tostring(err))
  end)

  -- n events of `size` bytes each, to this socket.
  socket:on("flood", function(n, size, ack)
    local blob = string.rep("x", size)
    for i = 1, n do socket:emit("blob", i, blob) end
    reply(ack, n)
  end)

  -- A broadcast to everyone else in "all".
  socket:on("shout", function(value, ack)
    socket:to("all"):emit("shouted", value, emitd.worker)
    reply(ack, true)
  end)
end
