-- wrk script for loadtest/bench-features.sh: every request carries the next token of a file (one per line,
-- cycling), as `Authorization: Bearer <token>`.
--   wrk -t 1 -c 64 -d 10s -s loadtest/tokens.lua https://127.0.0.1:PORT/jwt -- tokens.txt
-- With more tokens than the gateway caches, every request is a cache miss (ficus: 4096 cached tokens per worker).
local tokens, n, i = {}, 0, 0

function init(args)
   for line in io.lines(args[1]) do
      if #line > 0 then
         n = n + 1
         tokens[n] = "Bearer " .. line
      end
   end
   if n == 0 then
      error("tokens.lua: no token in " .. tostring(args[1]))
   end
end

function request()
   i = i % n + 1
   return wrk.format(nil, nil, { ["Authorization"] = tokens[i] })
end
