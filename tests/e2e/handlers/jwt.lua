-- jwt.lua - handlers of the JWT tests: what a script sees of a verified token.

function on_connect(socket)
  local claims = socket.claims
  socket:on("claims", function(ack) ack(claims or emitd.null) end)
  socket:on("rooms", function(ack) ack(socket:rooms()) end)
end
