-- crash.lua - namespace "/crash": on_connect raises, which refuses the
-- client with "Internal server error" and must not hurt the worker.
function on_connect(socket)
  error("on_connect failed on purpose")   -- E2E-CRASH-LINE
end
