# apt.sh - apt-get that waits for another apt instead of failing.
#
# Sourced by deploy/bootstrap.sh.  On a cloud VM's first boot
# unattended-upgrades holds the dpkg and lists locks for minutes; a fresh
# machine's "make run" must wait for them, not fail.
#
#   apt_wait_get ARGS...   apt-get ARGS, waiting up to APT_LOCK_TIMEOUT
#                          seconds (default 600) for the locks.
#
# apt-get install waits for the dpkg lock by itself when given
# DPkg::Lock::Timeout; apt-get update (apt 2.6) does not wait for the lists
# lock, so a refusal that names a lock is retried until the same timeout.
# Uses $sudo_cmd when the caller set it.

apt_wait_get() {
  local timeout=${APT_LOCK_TIMEOUT:-600} waited=0 out
  while ! out=$(${sudo_cmd:-} apt-get -o "DPkg::Lock::Timeout=$timeout" "$@" 2>&1); do
    if ! grep -q 'Could not get lock' <<<"$out" || [ "$waited" -ge "$timeout" ]; then
      echo "$out" >&2
      return 1
    fi
    [ "$waited" -gt 0 ] || echo "bootstrap: another apt holds its lock (unattended-upgrades?); waiting up to ${timeout}s" >&2
    sleep 2
    waited=$((waited + 2))
  done
  [ -z "$out" ] || echo "$out" >&2
  return 0
}
