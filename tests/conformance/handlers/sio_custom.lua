-- sio_custom.lua - namespace "/custom" for the socket.io-protocol test suite:
-- on connect, emit "auth" with the CONNECT payload -> 42/custom,["auth",{...}]
function on_connect(socket)
  socket:emit("auth", socket.handshake.auth)
end
