-- timers.lua - handlers of the timer tests: emitd.after / emitd.every and
-- socket:after / socket:every, with timer:cancel() and timer:pending().

-- Runs of timers tied to sockets, in this worker.
local tied_runs = 0

function on_connect(socket)
  socket:on("whoami", function(ack) ack({ worker = emitd.worker }) end)

  socket:on("after", function(ms, ack)
    local t0 = emitd.now()
    emitd.after(ms, function() socket:emit("fired", { waited = emitd.now() - t0 }) end)
    ack(true)
  end)

  -- Ticks `times` times, then cancels itself from inside its own run.
  socket:on("every", function(ms, times, ack)
    local n = 0
    local t
    t = emitd.every(ms, function()
      n = n + 1
      socket:emit("tick", n)
      if n == times then socket:emit("stopped", t:cancel(), t:pending()) end
    end)
    ack(t:pending())
  end)

  socket:on("cancel", function(ms, ack)
    local t = emitd.after(ms, function() socket:emit("fired", { cancelled = false }) end)
    local was = t:cancel()
    ack(was, t:pending(), t:cancel())
  end)

  socket:on("tied", function(ms, ack)
    socket:after(ms, function() tied_runs = tied_runs + 1; socket:emit("tied") end)
    socket:every(ms, function() tied_runs = tied_runs + 1 end)
    ack(true)
  end)
  socket:on("tied_runs", function(ack) ack(tied_runs, emitd.worker) end)

  -- A script error inside a timer is logged; the worker and the next timer go on.
  socket:on("failing", function(ms, ack)
    emitd.after(ms, function() error("boom from a timer") end)
    emitd.after(ms + 50, function() socket:emit("fired", { afterError = true }) end)
    ack(true)
  end)

  socket:on("bad", function(ms, ack)
    local ok, err = pcall(emitd.every, ms, function() end)
    ack(ok, tostring(err))
  end)
end
