-- For benches/wrk.sh: every request picks one of the server example's routes, the
-- misbehaving ones included (a leaked token, a panic, work past the deadline, the
-- ledger). Deterministic: a counter per thread, not a random number.
local paths = {
  "/work?ms=2", "/work?ms=5", "/leak", "/work?ms=1", "/panic",
  "/work?ms=150", "/ledger", "/work?ms=3", "/work?ms=0", "/ledger",
}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1])
end
