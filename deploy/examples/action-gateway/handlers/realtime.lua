-- realtime.lua - action-gateway.md on emitd: REQUEST envelopes executed by
-- the backend and answered with RESPONSE / ERROR envelopes correlated by
-- requestId. See ../README.md and emitd.conf(5).
--
-- Client -> server:  socket.emit("message", JSON.stringify(
--                      { type: "REQUEST", requestId, action, data }))
--                    (an object instead of a string is taken too)
-- Server -> client:  "message" with a JSON string:
--                      { type: "RESPONSE", requestId, action, data }
--                      { type: "ERROR", requestId, action, error: { code, message } }
--                    and the backend's UPDATE envelopes (through the API).
--
-- The token was verified before on_connect (the namespace's jwt group) and
-- the company, artifact, user and session rooms joined (its rooms).

local ACTIONS_URL = vars.actions_url or "http://127.0.0.1:8080/realtime/actions"
local ACTION_TIMEOUT = vars.action_timeout or 10000
local COMPANY_CLAIM = vars.company_claim or "companyId"
local USER_CLAIM = vars.user_claim or "sub"
local PER_MINUTE = vars.requests_per_minute or 60

local MAX_ID = 128        -- requestId, action, sessionId, artifactId: bytes

local function id_ok(v)
  return type(v) == "string" and #v > 0 and #v <= MAX_ID
end

-- Everything the client gets is a JSON string: the seed's clients parse it
-- with JSON.parse (some only if it is a string, some always).
local function send(socket, env)
  socket:emit("message", emitd.json_encode(env))
end

local function fail(socket, request_id, action, code, message, extra)
  local env = { type = "ERROR", requestId = request_id or emitd.null,
                error = { code = code, message = message } }
  if action ~= nil then env.action = action end
  for k, v in pairs(extra or {}) do env.error[k] = v end
  send(socket, env)
end

-- The token the client came with, to forward to the backend.
local function token_of(socket)
  local hs = socket.handshake
  local t = hs.auth.token or hs.query.token
  if t == nil and hs.headers.authorization then
    t = hs.headers.authorization:gsub("^[Bb]earer%s+", "")
  end
  return t
end

-- The request as the client sent it: a JSON string or an object.
local function parse(msg)
  if type(msg) == "string" then
    local v = emitd.json_decode(msg)
    if type(v) ~= "table" then
      return nil, "The message is not valid JSON"
    end
    msg = v
  end
  if type(msg) ~= "table" then
    return nil, "The message must be a JSON object"
  end
  return msg
end

local function execute(socket, req)
  local claims = socket.claims
  local user = tostring(claims[USER_CLAIM] or socket.id)
  local ok, _, wait = emitd.limit("action-gateway\n" .. user, PER_MINUTE, 60000)
  if not ok then
    fail(socket, req.requestId, req.action, "RATE_LIMITED",
         "Too many requests. Please slow down.", { retryAfter = math.ceil(wait / 1000) })
    return
  end
  local q = socket.handshake.query
  local res, err = emitd.http{
    url = ACTIONS_URL, method = "POST", timeout = ACTION_TIMEOUT,
    headers = { Authorization = "Bearer " .. (token_of(socket) or "") },
    body = { requestId = req.requestId, action = req.action, data = req.data,
             sessionId = q.sessionId, artifactId = q.artifactId or emitd.null,
             userId = user, companyId = tostring(claims[COMPANY_CLAIM]),
             socketId = socket.id },
  }
  if not socket.connected then return end
  if res == nil then
    fail(socket, req.requestId, req.action,
         err == "timeout" and "ACTION_TIMEOUT" or "BACKEND_UNAVAILABLE",
         err == "timeout" and "The action did not finish in time"
                           or "The action service is not available")
    emitd.log("warn", "action " .. req.action .. ": " .. tostring(err))
    return
  end
  local body = res.json
  if res.status >= 200 and res.status < 300 then
    local data = emitd.null
    if type(body) == "table" and body.data ~= nil then
      data = body.data
    elseif body ~= nil then
      data = body
    end
    send(socket, { type = "RESPONSE", requestId = req.requestId, action = req.action, data = data })
  elseif type(body) == "table" and type(body.error) == "table" then
    fail(socket, req.requestId, req.action, tostring(body.error.code or "ACTION_FAILED"),
         tostring(body.error.message or "The action failed"))
  else
    fail(socket, req.requestId, req.action, res.status == 403 and "FORBIDDEN" or
         res.status == 404 and "UNKNOWN_ACTION" or "ACTION_FAILED",
         "The action failed with status " .. res.status)
  end
end

function on_connect(socket)
  local q = socket.handshake.query
  if not id_ok(q.sessionId) then
    return false, "Session ID is required"
  end
  if q.artifactId ~= nil and not id_ok(q.artifactId) then
    return false, "Invalid artifact ID"
  end
  local company = socket.claims[COMPANY_CLAIM]
  if company == nil or company == "" then
    return false, "The token names no company"
  end
  socket.data = { userId = socket.claims[USER_CLAIM] or emitd.null, companyId = company,
                  sessionId = q.sessionId, artifactId = q.artifactId or emitd.null }

  socket:on("message", function(msg)
    local req, why = parse(msg)
    if req == nil then
      fail(socket, nil, nil, "INVALID_MESSAGE", why)
      return
    end
    local rid = id_ok(req.requestId) and req.requestId or nil
    if req.type ~= "REQUEST" then
      fail(socket, rid, nil, "INVALID_MESSAGE", "type must be \"REQUEST\"")
    elseif rid == nil then
      fail(socket, nil, nil, "INVALID_MESSAGE", "requestId must be a string of 1 to 128 bytes")
    elseif not id_ok(req.action) then
      fail(socket, rid, nil, "INVALID_MESSAGE", "action must be a string of 1 to 128 bytes")
    else
      execute(socket, req)
    end
  end)
end
