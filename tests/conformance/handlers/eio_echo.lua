-- eio_echo.lua - raw Engine.IO endpoint for the engine.io-protocol test suite
-- (socketio/engine.io-protocol, test-suite/). The suite expects the server to
-- send every message back unchanged: text stays text, binary stays binary.
function on_open(conn)
  conn:on("message", function(data)
    conn:send(data)
  end)
end
