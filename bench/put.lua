-- wrk script: partial updates of the docs customer (alternating values), keeping the -H headers.
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  wrk.body = string.format('{"legalName": "Dunder Mifflin %d", "addressInterior": "%d"}', n % 1000, n % 50)
  return wrk.format()
end
