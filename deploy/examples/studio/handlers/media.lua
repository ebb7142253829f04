-- media.lua - studio.md's "/media" namespace on emitd: subscriptions to
-- the progress of one media item. See ../README.md and emitd.conf(5).
--
-- Client -> server: subscribeMedia(mediaId, cb), unsubscribeMedia(mediaId, cb)
--                   cb({ success, mediaId } | { success = false, error })
-- Server -> client: mediaProgress, mediaComplete, mediaError, published by
--                   the backend to the room "media:<mediaId>".

local REQUIRES_AUTH = vars.media_requires_auth == true
local MAX_ID = 128
local MAX_SUBSCRIPTIONS = vars.max_rooms or 50

local function callback(cb, v)
  if type(cb) == "function" then cb(v) end
end

local function check(socket, id)
  if type(id) ~= "string" or #id == 0 or #id > MAX_ID then
    return "mediaId must be a string of 1 to " .. MAX_ID .. " characters"
  end
  if REQUIRES_AUTH and socket.claims == nil then
    return "Authentication required"
  end
  return nil
end

function on_connect(socket)
  socket:on("subscribeMedia", function(id, cb)
    local err = check(socket, id)
    if err == nil and #socket:rooms() - 1 >= MAX_SUBSCRIPTIONS then
      err = "Too many subscriptions (at most " .. MAX_SUBSCRIPTIONS .. ")"
    end
    if err ~= nil then
      callback(cb, { success = false, error = err })
      return
    end
    socket:join("media:" .. id)
    callback(cb, { success = true, mediaId = id })
  end)

  socket:on("unsubscribeMedia", function(id, cb)
    local err = check(socket, id)
    if err ~= nil then
      callback(cb, { success = false, error = err })
      return
    end
    socket:leave("media:" .. id)
    callback(cb, { success = true, mediaId = id })
  end)
end
