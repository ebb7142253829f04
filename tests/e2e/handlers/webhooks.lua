-- webhooks.lua - handlers of webhooks.test.js: a script calling its
-- backend with emitd.http from event handlers and timers, the way
-- action-gateway.md's REQUEST -> RESPONSE/ERROR envelopes need it.

function on_connect(socket)
  -- Any request the client describes; the ack is what emitd.http gave.
  socket:on("call", function(req, ack)
    local res, err = emitd.http(req)
    if res then
      ack({ status = res.status, body = res.body, json = res.json or emitd.null,
            ctype = res.headers["content-type"] or emitd.null, socketStill = socket.connected })
    else
      ack({ error = err })
    end
  end)
  socket:on("ping2", function(ack) ack("pong") end)
  -- A REQUEST envelope goes to the backend; its reply comes back as a
  -- RESPONSE envelope, a failure as an ERROR one, correlated by requestId.
  socket:on("message", function(env)
    if type(env) ~= "table" or env.type ~= "REQUEST" or type(env.requestId) ~= "string" then
      socket:emit("message", { type = "ERROR", requestId = type(env) == "table" and env.requestId or emitd.null,
                               error = { code = "INVALID_MESSAGE", message = "Malformed request" } })
      return
    end
    local res, err = emitd.http{ url = socket.handshake.auth.backend .. "/execute", body = env,
                                 headers = { ["X-Session"] = socket.id } }
    if res and res.status == 200 and res.json then
      socket:emit("message", { type = "RESPONSE", requestId = env.requestId, data = res.json })
    else
      socket:emit("message", { type = "ERROR", requestId = env.requestId,
                               error = { code = "BACKEND_ERROR", message = err or ("status " .. res.status) } })
    end
  end)
  -- From a timer too.
  socket:on("later", function(url, ack)
    emitd.after(10, function()
      local res, err = emitd.http{ url = url }
      ack(res and res.status or err)
    end)
  end)
end
