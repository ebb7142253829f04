-- hostile.lua - handlers of the hostile_*.test.js files: a bystander's
-- echo, a feed to subscribe to and flood, and scripts that misbehave (an
-- endless loop, allocating without end, recursing without end).

local function reply(ack, ...)
  if type(ack) == "function" then ack(...) end
end

function on_connect(socket)
  -- Every argument back through the ack.
  socket:on("echo", function(...)
    local args = table.pack(...)
    reply(args[args.n], table.unpack(args, 1, args.n - 1))
  end)

  socket:on("worker", function(ack) reply(ack, emitd.worker) end)

  socket:on("violations", function(ack)
    reply(ack, emitd.metrics().limitViolations)
  end)

  socket:on("subscribe", function(ack)
    socket:join("feed")
    reply(ack, emitd.worker)
  end)

  -- n events of `size` bytes to every subscriber, on every worker.
  socket:on("blast", function(n, size, ack)
    local blob = string.rep("x", size)
    for i = 1, n do nsp:to("feed"):emit("blob", i, blob) end
    reply(ack, n)
  end)

  -- A text to every subscriber, on every worker.
  socket:on("relay", function(text, ack)
    nsp:to("feed"):emit("relay", text)
    reply(ack, true)
  end)

  socket:on("join", function(room, ack)
    socket:join(room)
    reply(ack, #socket:rooms())
  end)

  -- A broadcast to a room named by `len` times "r" (and `c` characters
  -- more of "s"): a name too long for the broker must not reach the room
  -- named by its first 65,535 bytes on another worker.
  socket:on("to_long_room", function(len, ack)
    local ok, err = pcall(function()
      nsp:to(string.rep("r", len)):emit("long_room", len)
    end)
    reply(ack, ok, ok and "" or tostring(err))
  end)

  socket:on("spin", function(ack)
    local n = 0
    while true do n = n + 1 end
    reply(ack, n)         -- never reached
  end)

  -- Allocate about a gigabyte, a megabyte at a time.
  socket:on("hog", function(ack)
    local keep = {}
    for i = 1, 1024 do keep[i] = string.rep(string.char(i % 256), 1048576) end
    reply(ack, #keep)     -- only if the limit let it through
  end)

  socket:on("recurse", function(ack)
    local function down(n) return 1 + down(n + 1) end
    reply(ack, down(1))
  end)

  -- Whether the script's error left the worker's Lua state usable.
  socket:on("after", function(ack)
    local t = {}
    for i = 1, 1000 do t[i] = i end
    reply(ack, #t, collectgarbage("count") > 0)
  end)
end
