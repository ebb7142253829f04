-- jwt.lua - handlers of the JWT tests: what a script sees of a verified token.

function on_connect(socket)
  local claims = socket.claims
  socket:on("claims", function(ack) ack(claims or emitd.null) end)
  socket:on("rooms", function(ack) ack(socket:rooms()) end)
  -- studio.md's event-based authentication (a namespace whose token is
  -- optional at connect)
  socket:on("authenticate", function(data, ack)
    local c, message = nsp:verify_token(data.token)
    if c then
      socket:emit("authenticated", { userId = c.sub })
      ack({ success = true })
    else
      socket:emit("authError", { message = message })
      ack({ success = false, error = message })
    end
  end)
end