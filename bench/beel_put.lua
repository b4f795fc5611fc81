-- wrk script: partial updates of BeeL's docs customer (alternating values), keeping the -H headers.
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  wrk.body = string.format('{"legal_name": "Empresa Cliente %d SL", "general_discount": %d}', n % 1000, n % 50)
  return wrk.format()
end
