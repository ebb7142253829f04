-- reload.lua - handlers of the reload tests (reload.test.js). The test
-- copies this file and rewrites VERSION to see that a changed script
-- applies to the connections made after a reload.
local VERSION = "one"

function on_connect(socket)
  socket:join("all")
  -- Echo, with the version of the script that served it and the worker.
  socket:on("echo", function(x, ack)
    if type(ack) == "function" then ack({ x = x, version = VERSION, worker = emitd.worker }) end
  end)
end
