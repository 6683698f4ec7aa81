"""Resident memory of this process, for the benchmarks.

`resource.getrusage(...).ru_maxrss` is not used: Linux keeps it across fork and exec, so a child
started by a big benchmark process reports its parent's peak. VmHWM (the peak) and VmRSS (now)
in /proc/self/status belong to the current process image only.
"""

from pathlib import Path


def _status_mb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB -> MB
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def peak_rss_mb():
    """Highest resident memory of this process so far, in MB."""
    return _status_mb("VmHWM")


def current_rss_mb():
    """Resident memory of this process now, in MB."""
    return _status_mb("VmRSS")
