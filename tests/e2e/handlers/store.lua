-- store.lua - handlers of store.test.js: emitd.store, the same on every worker.

function on_connect(socket)
  local s = emitd.store
  socket:on("whoami", function(ack) ack({ worker = emitd.worker }) end)
  socket:on("set", function(k, v, ttl, ack) ack(s.set(k, v, ttl ~= emitd.null and ttl or nil)) end)
  socket:on("get", function(k, ack)
    local v = s.get(k)
    if v == nil then ack(emitd.null) else ack(v) end
  end)
  socket:on("del", function(k, ack) ack(s.del(k)) end)
  socket:on("incr", function(k, by, times, ack)
    local n
    for _ = 1, times do n = s.incr(k, by) end
    ack(n)
  end)
  socket:on("push", function(k, v, cap, ack) ack(s.push(k, v, cap)) end)
  socket:on("range", function(k, a, b, ack) ack(s.range(k, a, b)) end)
  socket:on("len", function(k, ack) ack(s.len(k)) end)
  socket:on("stats", function(ack) ack(s.stats()) end)
  socket:on("bad", function(what, ack)
    local ok, err = pcall(function()
      if what == "key" then return s.set(string.rep("k", 201), 1) end
      if what == "value" then return s.set("k", string.rep("v", 3000)) end
      if what == "fn" then return s.set("k", function() end) end
      if what == "incr" then s.set("str", "x"); return s.incr("str") end
    end)
    ack({ ok = ok, err = tostring(err) })
  end)
end
