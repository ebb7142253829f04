-- shutdown.lua - handlers of the shutdown tests: on_shutdown(nsp) says
-- goodbye to this worker's sockets before emitd disconnects them.

function on_connect(socket)
  socket:on("whoami", function(ack) ack({ worker = emitd.worker }) end)
end

function on_shutdown(n)
  n:emit("bye", { worker = emitd.worker, same = (n == nsp) })
end
