-- reject.lua - namespace "/reject": only a client whose handshake auth
-- carries token = "letmein" may join; others get a connect error with data.
function on_connect(socket)
  local auth = socket.handshake.auth
  if type(auth) ~= "table" or auth.token ~= "letmein" then
    return false, "not allowed", { code = 42 }
  end
  socket:on("hello", function(ack) ack("welcome in") end)
end
