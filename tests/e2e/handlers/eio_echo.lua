-- eio_echo.lua - raw Engine.IO endpoint: every message comes back as it
-- was sent (text or binary); the text "close" makes the server close.
function on_open(conn)
  conn:on("message", function(data)
    if data == "close" then
      conn:close()
    else
      conn:send(data)
    end
  end)
end
