-- ep_realtime.lua - endpoints.test.js: a namespace script that says which
-- endpoint's it is, and broadcasts within its own namespace.
local TAG = "realtime"

function on_connect(socket)
  socket:join("shared-room")
  socket:on("who", function(ack)
    ack({ tag = TAG, nsp = socket.nsp, name = nsp.name, size = nsp:size() })
  end)
  socket:on("shout", function(text, ack)
    nsp:to("shared-room"):emit("heard", TAG, text)
    ack(true)
  end)
end
