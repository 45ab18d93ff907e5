# Sourced by the scripts that need something of the machine (root, a nightly toolchain,
# network namespaces): `skip_or_fail REASON` prints `SKIPPED: REASON` and exits 0 on a developer
# machine, and fails when CI is `true` or `1` (any case), as the Rust tests' skip_outside_ci
# does: .ci/run installs every prerequisite, so a skip there would check nothing.
skip_or_fail() {
  case "${CI:-}" in
    [Tt][Rr][Uu][Ee] | 1)
      echo "FAILED: CI=${CI}, so this may not skip: $*" >&2
      exit 1
      ;;
  esac
  echo "SKIPPED: $*"
  exit 0
}
