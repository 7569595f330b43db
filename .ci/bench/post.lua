-- wrk script: POST the form in WRK_BODY with the Basic credentials in
-- WRK_AUTH to the URL given on the command line; counts non-200 answers.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("WRK_AUTH")

local bad = 0
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end

function done(summary, latency, requests)
  -- wrk runs response() in each thread's own Lua state; the summary's
  -- status errors count the non-2xx answers across threads.
  io.write(string.format("non-2xx answers: %d\n", summary.errors.status))
end
