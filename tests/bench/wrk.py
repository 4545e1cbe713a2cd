"""HTTP load: wrk (one thread, keep-alive connections), each request carrying the next
session JWT of a file, in file order.

The Lua script reads the file once before the run (wrk's ``init`` runs before its clock
starts) and builds each request by one concatenation onto wrk's own request template. It
counts the requests it sent and how often it ran out of sessions and started over
(``wraps``: 0 means no session was sent twice), and reports wrk's own CPU seconds in the
measured window (``os.clock`` after loading and at the end: the process's CPU time, every
thread). With ``stop_after`` wrk exits once that many responses came back (wrk has no
request-count limit of its own), writing ``responses non_200`` to a summary file: for
feeding a fixed number of distinct users.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.bench.loadgen import Result

_SCRIPT = """
local prefix, suffix, stop_after, summary
local reqs = {}
n, sent, wraps, init_cpu = 0, 0, 0, 0
init = function(args)
  local template = wrk.format(nil, nil, {["Authorization"] = "Bearer @"})
  local at = template:find("@", 1, true)
  prefix, suffix = template:sub(1, at - 1), template:sub(at + 1)
  for line in io.lines(args[1]) do n = n + 1; reqs[n] = line end
  stop_after = tonumber(args[2] or "0")
  summary = args[3]
  if stop_after > 0 then
    local responses, bad = 0, 0
    response = function(status)
      responses = responses + 1
      if status ~= 200 then bad = bad + 1 end
      if responses >= stop_after then
        local fh = io.open(summary, "w"); fh:write(responses, " ", bad, "\\n"); fh:close()
        os.exit(0)
      end
    end
  end
  init_cpu = os.clock()
end
request = function()
  sent = sent + 1
  if sent > n * (wraps + 1) then wraps = wraps + 1 end
  return prefix .. reqs[(sent - 1) % n + 1] .. suffix
end
local threads = {}
setup = function(thread) threads[#threads + 1] = thread end
done = function()
  local s, w, c = 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("sent"); w = w + t:get("wraps"); c = math.max(c, t:get("init_cpu"))
  end
  io.write(string.format("BENCH sent=%d wraps=%d cpu=%.3f\\n", s, w, os.clock() - c))
end
"""


def script(workdir: Path) -> Path:
    """The Lua script, written into ``workdir``."""
    path = workdir / "sessions.lua"
    path.write_text(_SCRIPT)
    return path


def wrk(
    name: str,
    url: str,
    sessions: Path,
    *,
    connections: int,
    duration_s: int,
    workdir: Path,
) -> Result:
    """``duration_s`` of keep-alive load on ``url`` with ``connections`` connections."""
    args = [
        *("wrk", "-t", "1", "-c", str(connections), "-d", f"{duration_s}s", "--latency"),
        *("-s", str(script(workdir)), url, "--", str(sessions)),
    ]
    out = subprocess.run(
        args, capture_output=True, text=True, timeout=duration_s + 120, check=True
    ).stdout
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = int(bad.group(1)) if bad else 0
    socket_errors = sum(int(g) for g in sock.groups()) if sock else 0
    mine = re.search(r"BENCH sent=(\d+) wraps=(\d+) cpu=([\d.]+)", out)
    assert mine is not None, out
    cpu_s = float(mine.group(3))
    return Result(
        name,
        rps,
        _ms(_find(r"50%\s+([\d.]+\w+)", out)),
        _ms(_find(r"99%\s+([\d.]+\w+)", out)),
        non_2xx + socket_errors,
        p90_ms=_ms(_find(r"90%\s+([\d.]+\w+)", out)),
        requests=int(_find(r"(\d+) requests in", out)),
        loadgen="wrk",
        loadgen_cpu_s=cpu_s,
        loadgen_cores=cpu_s / duration_s,
        wraps=int(mine.group(2)),
        extra={
            "non_2xx": non_2xx,
            "socket_errors": socket_errors,
            "timeouts": int(sock.group(4)) if sock else 0,
        },
    )


def wrk_count(
    url: str, sessions: Path, count: int, *, connections: int, workdir: Path, timeout_s: float
) -> tuple[int, int]:
    """Keep-alive load until ``count`` responses came back (at most ``timeout_s``); returns
    (responses, non-200 responses)."""
    summary = workdir / "wrk-count.summary"
    summary.unlink(missing_ok=True)
    args = [
        *("wrk", "-t", "1", "-c", str(connections), "-d", f"{int(timeout_s)}s"),
        *("-s", str(script(workdir)), url, "--", str(sessions), str(count), str(summary)),
    ]
    subprocess.run(args, capture_output=True, timeout=timeout_s + 60, check=True)
    if not summary.exists():
        raise TimeoutError(f"wrk: fewer than {count} responses in {timeout_s}s")
    responses, bad = (int(v) for v in summary.read_text().split())
    return responses, bad


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match is not None, f"{pattern!r} not in wrk output:\n{text}"
    return match.group(1)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
